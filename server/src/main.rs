fn main() -> std::process::ExitCode {
    velferd::cli::main()
}
