//! Build-time helper: `mt-gen man DIR` writes the man pages, `mt-gen
//! completions DIR` the shell completions. Not installed.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    mt::exit::main("mt-gen", || {
        match args.as_slice() {
            [what, dir] if what == "man" => mt::cli::manpages::man_pages(&PathBuf::from(dir))?,
            [what, dir] if what == "completions" => {
                mt::cli::manpages::completions(&PathBuf::from(dir))?
            }
            _ => return Err(mt::exit::fail(2, "usage: mt-gen man|completions DIR")),
        }
        Ok(0)
    })
}
