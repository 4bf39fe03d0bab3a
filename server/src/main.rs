// jemalloc, not glibc's malloc: every request allocates and frees thousands of small values
// (GraphQL values, rows, futures), where glibc spent a sixth of the server's CPU. Measured in
// docs/performance.md ("Fifth round"); the library and its in-process tests keep the system's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    velferd::cli::main()
}
