//! Hostile adapter: a component that exports some other world, not
//! `velferd:device/device-adapter`. The host must reject it on upload.

#![allow(unsafe_code, reason = "the export! macro wit-bindgen generates in this crate expands to unsafe raw exports")]

wit_bindgen::generate!({
    inline: r#"
        package acme:gadget@1.0.0;
        interface runner {
            run: func(input: list<u8>) -> string;
        }
        world gadget {
            export runner;
        }
    "#,
});

struct Gadget;

impl exports::acme::gadget::runner::Guest for Gadget {
    fn run(input: Vec<u8>) -> String {
        format!("{} bytes", input.len())
    }
}

export!(Gadget);
