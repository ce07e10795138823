fn main() -> std::process::ExitCode {
    mt::cli::profile::main()
}
