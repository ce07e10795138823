//! Exit codes shared by every tool, and the `main` wrapper that maps errors to them.
//!
//! The codes follow sysexits(3) where one fits; see the table in mt(7).

use std::fmt;
use std::io;
use std::process::ExitCode;

pub const OK: u8 = 0;
/// A negative answer, not an error: nothing new, still running, refused.
pub const NO: u8 = 1;
pub const USAGE: u8 = 2;
pub const DATAERR: u8 = 65;
pub const UNAVAILABLE: u8 = 69;
pub const SOFTWARE: u8 = 70;
pub const CANTCREAT: u8 = 73;
pub const TEMPFAIL: u8 = 75;
/// A settings file, profile or variable that is unreadable or invalid.
pub const CONFIG: u8 = 78;

/// An error that carries the exit code it should end the process with:
/// either a message of its own (`fail`) or another error it codes
/// (`Coded::code`), whose cause chain stays whole.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub msg: String,
    cause: Option<anyhow::Error>,
}

impl Fail {
    /// The coded error, when this one codes another.
    pub fn cause(&self) -> Option<&anyhow::Error> {
        self.cause.as_ref()
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cause {
            // The coded error's own message; its causes follow as ours.
            Some(c) => fmt::Display::fmt(&**c, f),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for Fail {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().and_then(|c| c.source())
    }
}

/// Build an error with an exit code.
pub fn fail(code: u8, msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Fail {
        code,
        msg: msg.into(),
        cause: None,
    })
}

/// Attach an exit code to any error, keeping its message and its causes.
pub trait Coded<T> {
    fn code(self, code: u8) -> anyhow::Result<T>;
}

impl<T, E> Coded<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn code(self, code: u8) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            anyhow::Error::new(Fail {
                code,
                msg: e.to_string(),
                cause: Some(e),
            })
        })
    }
}

/// The exit code an error asks for: the first `Fail` in its chain, else 70.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Fail>() {
            return f.code;
        }
    }
    SOFTWARE
}

/// Every error in `err`'s chain, including the ones a `Fail` codes.
pub fn causes(err: &anyhow::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    for c in err.chain() {
        out.push(c);
        // A coded error's own top is not in the chain (its message is the
        // Fail's); its causes are.
        let mut f = c.downcast_ref::<Fail>();
        while let Some(inner) = f.and_then(Fail::cause) {
            let top: &(dyn std::error::Error + 'static) = inner.as_ref();
            out.push(top);
            f = top.downcast_ref::<Fail>();
        }
    }
    out
}

/// True when the error is a closed pipe on our output: a clean way to end.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    causes(err).into_iter().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

static TOOL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Name the running tool, for `warn` and error messages (the first call wins).
pub fn set_tool(name: &str) {
    let _ = TOOL.set(name.to_string());
}

/// The running tool's name: as set by `set_tool`, else the program's file
/// name, else "mt".
pub fn tool() -> &'static str {
    TOOL.get_or_init(|| {
        std::env::args_os()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .filter(|n| n.starts_with("mt-"))
            .unwrap_or_else(|| "mt".into())
    })
}

/// Print a warning on stderr as `tool: message`, under the running tool's
/// name (library code does not know which tool it runs in).
pub fn warn(msg: impl fmt::Display) {
    eprintln!("{}: {msg}", tool());
}

/// Run a tool's body, print `tool: message` on failure and turn the outcome
/// into the process exit code.
pub fn main(tool: &str, body: impl FnOnce() -> anyhow::Result<u8>) -> ExitCode {
    set_tool(tool);
    match body() {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{tool}: {e:#}");
            ExitCode::from(code_of(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_survives_context() {
        let e = fail(TEMPFAIL, "busy").context("while posting");
        assert_eq!(code_of(&e), TEMPFAIL);
        assert_eq!(format!("{e:#}"), "while posting: busy");
    }

    #[test]
    fn coding_keeps_the_cause_chain() {
        let r: Result<(), io::Error> = Err(io::Error::from(io::ErrorKind::BrokenPipe));
        let e = r
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context("writing"))
            .code(CANTCREAT)
            .unwrap_err()
            .context("posting");
        assert_eq!(code_of(&e), CANTCREAT);
        assert!(is_broken_pipe(&e));
        let plain: Result<(), io::Error> = Err(io::Error::from(io::ErrorKind::BrokenPipe));
        let flat = format!("{:#}", plain.map_err(anyhow::Error::from).unwrap_err());
        assert_eq!(format!("{e:#}"), format!("posting: writing: {flat}"));
        // The top of a coded error is found too.
        let r: Result<(), io::Error> = Err(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&r.code(SOFTWARE).unwrap_err()));
    }

    #[test]
    fn plain_errors_are_internal() {
        let e = anyhow::anyhow!("boom");
        assert_eq!(code_of(&e), SOFTWARE);
    }

    #[test]
    fn coded_keeps_message() {
        let r: Result<(), io::Error> = Err(io::Error::other("disk"));
        let e = r.code(CANTCREAT).unwrap_err();
        assert_eq!(code_of(&e), CANTCREAT);
        assert_eq!(e.to_string(), "disk");
    }
}
