fn main() -> std::process::ExitCode {
    mt::cli::nudge::main()
}
