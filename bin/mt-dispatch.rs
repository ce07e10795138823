fn main() -> std::process::ExitCode {
    mt::cli::dispatch::main()
}
