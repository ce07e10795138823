fn main() -> std::process::ExitCode {
    mt::cli::worktree::main()
}
