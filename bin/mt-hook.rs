fn main() -> std::process::ExitCode {
    mt::cli::hook::main()
}
