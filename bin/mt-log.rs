fn main() -> std::process::ExitCode {
    mt::cli::log::main()
}
