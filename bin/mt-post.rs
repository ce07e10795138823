fn main() -> std::process::ExitCode {
    mt::cli::post::main()
}
