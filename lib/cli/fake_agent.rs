//! mt-fake-agent: the command-line front end of `crate::fake_agent`.

use std::process::ExitCode;

use super::Tool;
use crate::exit;
use crate::fake_agent;
pub use crate::fake_agent::Args;

pub fn tool() -> Tool {
    Tool::of::<Args>(
        "mt-fake-agent",
        &[
            (
                "EXAMPLES",
                "A coworker that posts progress for each message, for a demo:
  $ MT_AGENT_CMD=mt-fake-agent MT_FAKE_RUN='mt-post \"working on: $MT_FAKE_TEXT\"' \\
      mt-spawn york -d --prompt 'the parser'

Replay a real capture:
  $ MT_AGENT_CMD=mt-fake-agent MT_FAKE_SCRIPT=multi_turn.jsonl mt-spawn park --prompt go",
            ),
            (
                "MODES",
                "hang\tafter the init event, read nothing and answer nothing
crash\tabort (SIGABRT) right after the init event
exit:N\texit with status N after answering the first message
grandchild\tstart a child process (sleep) in the agent's process group
job\tstart a child process (sleep) in a process group of its own
orphan\tstart a short-lived process whose parent exits at once
rate-limit\treport a rejected rate limit during the first turn, resetting in an hour (MT_FAKE_RESETS_IN seconds)
tool-wait\tstart a tool call in the first turn and never finish it
hang-first:NAME\tas hang, for the agent named NAME (MT_AGENT) and only when not resumed
linger:MS\twait MS milliseconds after standard input closes before exiting
ignore-term\tignore SIGTERM",
            ),
            (
                "EXIT STATUS",
                "0\tstandard input closed\nN\tas asked by exit:N",
            ),
            ("SEE ALSO", "mt-spawn(1)"),
        ],
    )
}

pub fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv
        .iter()
        .skip(1)
        .any(|a| matches!(a.as_str(), "-h" | "--help" | "-V" | "--version"))
    {
        let _: Args = tool().try_parse().unwrap_or_else(|e| e.exit());
    }
    exit::main(tool().name, || fake_agent::run(argv))
}
