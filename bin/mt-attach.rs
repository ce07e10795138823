fn main() -> std::process::ExitCode {
    mt::cli::attach::main()
}
