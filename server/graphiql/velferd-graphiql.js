// Starts GraphiQL on Velferd's endpoints with its starting tabs. The page that `GET /graphql`
// serves (server/src/http/graphiql.rs) loads it after React, ReactDOM and GraphiQL, and hands
// it the endpoints and tabs as JSON: the page's Content-Security-Policy allows no inline script.
'use strict';
(function () {
  var config = JSON.parse(document.getElementById('velferd-graphiql-config').textContent);
  var url = new URL(config.endpoint, window.location.href);
  var subscriptionUrl = new URL(config.subscriptionEndpoint, window.location.href);
  subscriptionUrl.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  // Queries and mutations over HTTP; subscriptions over graphql-transport-ws, whose
  // connection_init payload carries the headers of the Headers editor (`Authorization`).
  var fetcher = GraphiQL.createFetcher({ url: url.toString(), subscriptionUrl: subscriptionUrl.toString() });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(
      GraphiQL,
      {
        fetcher: fetcher,
        defaultTabs: config.tabs,
        // Open on the Headers editor, where the token goes.
        defaultEditorToolsVisibility: 'headers',
        // A token stays in the page, never in the browser's storage.
        shouldPersistHeaders: false,
      },
      React.createElement(GraphiQL.Logo, null, config.title)
    )
  );
})();
