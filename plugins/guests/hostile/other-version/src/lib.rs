//! Hostile (or merely too new) adapter: built against `velferd:device@3.0.0`,
//! an interface version this host does not serve. The host must reject it on
//! upload with an unsupported-version error, not misread it as a version it serves.

#![allow(unsafe_code, reason = "the export! macro wit-bindgen generates in this crate expands to unsafe raw exports")]

wit_bindgen::generate!({
    inline: r#"
        package velferd:device@3.0.0;
        interface adapter {
            record adapter-info {
                supplier: string,
                product: string,
                adapter-version: string,
            }
            describe: func() -> adapter-info;
            decode: func(content-type: string, payload: list<u8>) -> result<list<string>, string>;
        }
        world device-adapter {
            export adapter;
        }
    "#,
});

use exports::velferd::device::adapter::{AdapterInfo, Guest};

struct Future;

impl Guest for Future {
    fn describe() -> AdapterInfo {
        AdapterInfo { supplier: "Future Ltd".into(), product: "v3".into(), adapter_version: "3.0.0".into() }
    }

    fn decode(_: String, payload: Vec<u8>) -> Result<Vec<String>, String> {
        Ok(vec![format!("{} bytes", payload.len())])
    }
}

export!(Future);
