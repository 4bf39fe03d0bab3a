//! `velferd adapter check` without the server: the same library function.
//!
//! cargo run -p velferd-plugins --example adapter-check -- <file.wasm> [--sample <file> --content-type <type>]

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut component = None;
    let (mut sample, mut content_type) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sample" => sample = args.next().map(PathBuf::from),
            "--content-type" => content_type = args.next(),
            _ if component.is_none() => component = Some(PathBuf::from(arg)),
            other => {
                eprintln!("unexpected argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(component) = component else {
        eprintln!("usage: adapter-check <file.wasm> [--sample <file> --content-type <type>]");
        return ExitCode::from(2);
    };
    let sample = match (&sample, &content_type) {
        (Some(file), Some(ct)) => Some((file.as_path(), ct.as_str())),
        (None, None) => None,
        _ => {
            eprintln!("--sample and --content-type go together");
            return ExitCode::from(2);
        }
    };
    let report = velferd_plugins::check(&component, sample, &velferd_plugins::Limits::default());
    print!("{report}");
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
