fn main() -> std::process::ExitCode {
    mt::cli::reap::main()
}
