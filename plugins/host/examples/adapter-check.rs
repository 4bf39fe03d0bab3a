//! `velferd adapter check` without the server: the same library function, under the default
//! limits and without a compile cache.
//!
//! cargo run -p velferd-plugins --example adapter-check -- <file.wasm> [--sample <file> --content-type <type> [--expect-error <code>]]

use std::path::PathBuf;
use std::process::ExitCode;

use velferd_plugins::{CheckOptions, Limits, Sample};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut component = None;
    let (mut sample, mut content_type, mut expect_error) = (None, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sample" => sample = args.next().map(PathBuf::from),
            "--content-type" => content_type = args.next(),
            "--expect-error" => expect_error = args.next(),
            _ if component.is_none() => component = Some(PathBuf::from(arg)),
            other => {
                eprintln!("unexpected argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(component) = component else {
        eprintln!("usage: adapter-check <file.wasm> [--sample <file> --content-type <type> [--expect-error <code>]]");
        return ExitCode::from(2);
    };
    let sample = match (&sample, &content_type) {
        (Some(file), Some(ct)) => Some(Sample { file, content_type: ct, expect_error: expect_error.as_deref() }),
        (None, None) if expect_error.is_none() => None,
        _ => {
            eprintln!("--sample and --content-type go together, and --expect-error needs them");
            return ExitCode::from(2);
        }
    };
    let report = velferd_plugins::check(&component, &Limits::default(), &CheckOptions { sample, cache: None });
    print!("{report}");
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
