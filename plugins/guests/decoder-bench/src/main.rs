//! The reference decoders compiled natively, timed the same way as inside the
//! sandbox: `native-decoder-bench <dispenser|alarm> <message file> <n>` prints
//! the median nanoseconds per decode over 15 runs of `n` decodes.

use std::time::Instant;
use velferd_adapter_sdk::Timestamp;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, decoder, file, n] = &args[..] else {
        eprintln!("usage: native-decoder-bench <dispenser|alarm> <message file> <iterations>");
        std::process::exit(2);
    };
    let payload = std::fs::read(file).expect("read the message file");
    let n: u32 = n.parse().expect("iterations");
    let received_at = Timestamp { seconds: 1_795_331_052, nanoseconds: 0 };
    // Warm up caches and the allocator first.
    velferd_decoder_bench::run(decoder, &payload, received_at, n).expect("decodes");
    let mut runs: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            velferd_decoder_bench::run(decoder, &payload, received_at, n).expect("decodes");
            start.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    println!("{:.1}", runs[runs.len() / 2]);
}
