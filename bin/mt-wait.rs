fn main() -> std::process::ExitCode {
    mt::cli::wait::main()
}
