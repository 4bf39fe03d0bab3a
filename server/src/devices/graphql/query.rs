//! The device lists: products, devices, events, dead letters and signing keys.

use super::*;

#[derive(Default)]
pub struct DeviceQuery;

#[connections]
#[Object]
impl DeviceQuery {
    /// Device products, by slug. Every signed-in user may list them (municipalities register
    /// devices by product).
    async fn device_products(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<DeviceProduct>> {
        DeviceViewer::of(ctx).await?;
        let page = page.parse()?;
        let select = device_product::Entity::find().order_by_asc(device_product::Column::Slug);
        page_by_id(ctx, OrderDirection::Asc, select, device_product::Column::Id, &page, |p| p.id, DeviceProduct).await
    }

    /// One device product by its slug.
    async fn device_product(&self, ctx: &Context<'_>, slug: String) -> Result<Option<DeviceProduct>> {
        DeviceViewer::of(ctx).await?;
        Ok(product_by_slug(ctx, &slug_argument(&slug)?).await?.map(DeviceProduct))
    }

    /// Devices you may see: a municipality its own, a supplier those of its products, admins
    /// all. `product` narrows to one product's, by slug.
    async fn devices(&self, ctx: &Context<'_>, product: Option<String>, page: PageArgs) -> Result<Page<Device>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let page = page.parse()?;
        let mut select = device::Entity::find().filter(viewer.device_condition());
        if let Some(slug) = product {
            let slug = slug_argument(&slug)?;
            let id = product_by_slug(ctx, &slug).await?.map_or(0, |p| p.id);
            select = select.filter(device::Column::ProductId.eq(id));
        }
        page_by_id(ctx, OrderDirection::Asc, select, device::Column::Id, &page, |d| d.id, Device).await
    }

    /// Events of the devices you may see, newest first.
    async fn device_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeviceEventFilter>,
        page: PageArgs,
    ) -> Result<Page<DeviceEvent>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let visible = SqlQuery::select()
            .column(device::Column::Id)
            .from(device::Entity)
            .cond_where(viewer.device_condition())
            .to_owned();
        let events = device_event::Entity::find().filter(device_event::Column::DeviceId.in_subquery(visible));
        page_events(ctx, events, filter, page).await
    }

    /// Dead letters you may see: a supplier its products', a municipality those naming one of
    /// its devices, admins all. Unresolved ones unless `filter.resolved` says otherwise.
    async fn dead_letters(
        &self,
        ctx: &Context<'_>,
        filter: Option<DeadLetterFilter>,
        page: PageArgs,
    ) -> Result<Page<DeadLetter>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let page = page.parse()?;
        let filter = filter.unwrap_or_default();
        let mut select = dead_letter::Entity::find().filter(viewer.dead_letter_condition());
        select = if filter.resolved.unwrap_or(false) {
            select.filter(dead_letter::Column::ResolvedAt.is_not_null())
        } else {
            select.filter(dead_letter::Column::ResolvedAt.is_null())
        };
        if let Some(slug) = filter.product {
            let id = product_by_slug(ctx, &slug_argument(&slug)?).await?.map_or(0, |p| p.id);
            select = select.filter(dead_letter::Column::ProductId.eq(id));
        }
        page_by_id(ctx, OrderDirection::Asc, select, dead_letter::Column::Id, &page, |l| l.id, DeadLetter).await
    }

    /// Your organisation's signing keys (suppliers).
    async fn signing_keys(&self, ctx: &Context<'_>) -> Result<Vec<SigningKey>> {
        let viewer = DeviceViewer::of(ctx).await?;
        let Some(supplier) = viewer.supplier() else { return Ok(vec![]) };
        let rows = signing_key::Entity::find()
            .filter(signing_key::Column::SupplierId.eq(supplier))
            .order_by_asc(signing_key::Column::Id)
            .all(state(ctx).db.read())
            .await
            .map_err(ApiError::from)?;
        Ok(rows.into_iter().map(SigningKey).collect())
    }
}
