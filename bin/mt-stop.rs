fn main() -> std::process::ExitCode {
    mt::cli::stop::main()
}
