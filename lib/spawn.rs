//! Starting an agent: take its liveness lock, record how it was started,
//! build its command line and environment, and hand over to the supervisor,
//! in this process or (detached) in a grandchild in a session of its own.

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::{AgentDir, Meta, State, Status};
use crate::exit::{self, DATAERR, NO, TEMPFAIL, UNAVAILABLE, fail};
use crate::statedir::StateDir;
use crate::{infra::fsutil, infra::id, infra::lock, infra::time, supervise};

/// The agent program when `$MT_AGENT_CMD` is not set.
pub const DEFAULT_AGENT_CMD: &str = "claude";

/// Variables a Claude Code session sets for its tools and hooks, which must
/// not leak into an agent started from one (it would take itself for a
/// child of that session). The user's own configuration (`ANTHROPIC_*`,
/// `CLAUDE_CONFIG_DIR`, proxies, other `CLAUDE_CODE_*` settings) is kept.
pub const CLEANED_ENV: &[&str] = &[
    "CLAUDECODE",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_MESSAGING_SOCKET",
    "CLAUDE_CODE_MESSAGING_TOKEN",
    "CLAUDE_CODE_CHILD_SESSION",
    "CLAUDE_CODE_CHILD_NOTES_DIR",
    "CLAUDE_CODE_SESSION_ATTENDED",
    "CLAUDE_CODE_EXECPATH",
    "CLAUDE_PID",
    "CLAUDE_EFFORT",
    "CLAUDE_ENV_FILE",
    "CLAUDE_PROJECT_DIR",
    "AI_AGENT",
    // mt's own, set again for the agent (or not at all).
    "MT_TASK",
    "MT_RUN",
    "CLAUDE_CODE_TASK_LIST_ID",
    "IS_SANDBOX",
];

/// What to start. `None` fields fall back, on `--resume`, to what meta.json
/// recorded; otherwise to defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub name: String,
    /// The first user message; none leaves the agent waiting for nudges.
    pub prompt: Option<String>,
    pub cwd: Option<PathBuf>,
    pub worktree: bool,
    pub task: Option<String>,
    pub task_list: Option<String>,
    pub model: Option<String>,
    pub role: Option<String>,
    pub channel: Option<String>,
    pub resume: bool,
    pub idle_exit: Option<Duration>,
    pub sandbox: bool,
    pub extra_args: Vec<String>,
    pub agent_cmd: Option<String>,
    /// Permission mode, extra allowances or a profile file.
    pub permissions: crate::permissions::Choice,
    /// Auth profile (`mt-profile`); none: the `profile` setting
    /// (`$MT_PROFILE`, the settings files) on a fresh start, what meta.json
    /// recorded on a resume.
    pub profile: Option<String>,
    /// Other repositories to work in: a worktree in each, given to the
    /// agent with `--add-dir`.
    pub add_repos: Vec<PathBuf>,
    /// Start without the coworker prompt (see `prompts`).
    pub no_coworker_prompt: bool,
}

/// Everything the supervisor needs for one agent.
#[derive(Debug)]
pub struct Plan {
    pub state: StateDir,
    pub agent: AgentDir,
    pub meta: Meta,
    /// Start with `--resume meta.session_id` rather than `--session-id`.
    pub resume: bool,
    pub prompt: Option<String>,
    pub idle_exit: Option<Duration>,
    /// bubblewrap, when sandboxed.
    pub bwrap: Option<PathBuf>,
    /// Status to start from (totals of earlier runs when resuming).
    pub status: Status,
    /// The environment the agent's auth profile gives, read at this start.
    pub auth: crate::profile::AgentAuth,
}

/// The worktree for agent `name` in the repository around the current
/// directory: created on branch `mt/NAME` if missing, reused if present.
pub fn worktree_path(_state: &StateDir, name: &str) -> Result<PathBuf> {
    let wt = crate::worktree::add(&crate::worktree::AddOptions {
        name: name.into(),
        ..Default::default()
    })?;
    Ok(wt.path)
}

/// The agent's arguments (after the program name), with its settings file.
pub fn agent_args(meta: &Meta, resume: bool, settings: &Path) -> Vec<String> {
    let mut a: Vec<String> = [
        "-p",
        "--verbose",
        "--output-format",
        "stream-json",
        "--input-format",
        "stream-json",
    ]
    .map(String::from)
    .to_vec();
    a.push(if resume { "--resume" } else { "--session-id" }.into());
    a.push(meta.session_id.clone());
    a.extend(["--settings".into(), settings.to_string_lossy().into_owned()]);
    if let Some(m) = &meta.model {
        a.extend(["--model".into(), m.clone()]);
    }
    let appended: Vec<&str> = [&meta.system_prompt, &meta.role]
        .into_iter()
        .flatten()
        .map(|s| s.trim_end())
        .collect();
    if !appended.is_empty() {
        a.extend(["--append-system-prompt".into(), appended.join("\n\n")]);
    }
    for d in &meta.add_dirs {
        a.extend(["--add-dir".into(), d.to_string_lossy().into_owned()]);
    }
    a.extend(meta.extra_args.iter().cloned());
    a
}

/// Variables to set in the agent's environment (the `CLEANED_ENV` ones are
/// removed first). Claude Code's task tools are on, on the agent's list.
pub fn agent_env(meta: &Meta, state_root: &Path) -> Vec<(String, OsString)> {
    let mut env = vec![
        ("MT_AGENT".to_string(), OsString::from(&meta.name)),
        ("MT_DIR".to_string(), state_root.as_os_str().to_owned()),
        ("MT_CHANNEL".to_string(), OsString::from(&meta.channel)),
        ("CLAUDE_CODE_ENABLE_TODO_TOOLS".to_string(), "1".into()),
    ];
    if let Some(t) = &meta.task {
        env.push(("MT_TASK".into(), t.into()));
    }
    if let Some(l) = &meta.task_list {
        env.push(("CLAUDE_CODE_TASK_LIST_ID".into(), l.into()));
    }
    if let Some(p) = &meta.profile {
        // The name only: agents it starts use the same account.
        env.push((crate::profile::ENV.into(), p.into()));
    }
    if meta.sandbox
        && meta.permissions.as_ref().and_then(crate::permissions::mode) == Some("bypassPermissions")
    {
        // Claude Code refuses to bypass permissions as root unless told it
        // runs in a sandbox, which under bubblewrap it does.
        env.push(("IS_SANDBOX".into(), "1".into()));
    }
    env
}

/// The `mt-hook` the agent's hooks run: beside this program (where `make
/// install` and `cargo install` put every tool), else from PATH.
pub fn mt_hook_program() -> Result<PathBuf> {
    sibling_program("mt-hook").ok_or_else(|| {
        fail(
            UNAVAILABLE,
            "cannot find mt-hook beside this program or in PATH (the agent needs it for its hooks)",
        )
    })
}

/// The Claude Code settings mt gives an agent with `--settings`: mt's hooks
/// (a fresh worktree has no project settings, and a user's may have none),
/// the environment Claude Code needs, and the permission profile. They merge
/// with the user's and the project's own settings.
pub fn agent_settings(meta: &Meta, state_root: &Path, mt_hook: &Path) -> serde_json::Value {
    let mut s = crate::claude_settings::hooks_for_agent(mt_hook);
    s["env"] = crate::claude_settings::env_object(&agent_env(meta, state_root));
    if let Some(p) = &meta.permissions {
        s["permissions"] = p.clone();
    }
    s
}

/// The bubblewrap command line that runs `program args` with the whole
/// file system read-only except `writable` (which must exist), with a
/// fresh /dev and /proc, dying with its parent. No new session or pid
/// namespace: the supervisor signals the agent's process group.
pub fn bwrap_args(
    cwd: &Path,
    writable: &[PathBuf],
    program: &str,
    args: &[String],
) -> Vec<OsString> {
    let mut v: Vec<OsString> = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        .map(OsString::from)
        .to_vec();
    for w in writable {
        v.extend([OsString::from("--bind"), w.into(), w.into()]);
    }
    v.extend([
        OsString::from("--die-with-parent"),
        "--chdir".into(),
        cwd.into(),
        "--".into(),
        program.into(),
    ]);
    v.extend(args.iter().map(OsString::from));
    v
}

/// What the sandbox leaves writable: the working directory and the
/// worktrees of `--add-repo`, their repositories' git directories (commits
/// from a worktree write there), the state directory, Claude Code's
/// configuration, and /tmp. Missing paths are
/// left out (bwrap refuses to bind them).
pub fn sandbox_writable(cwd: &Path, extra: &[PathBuf], state_root: &Path) -> Vec<PathBuf> {
    let mut w = Vec::new();
    for dir in std::iter::once(cwd).chain(extra.iter().map(PathBuf::as_path)) {
        w.push(dir.to_path_buf());
        if let Some(g) = crate::statedir::discover_git(dir) {
            w.push(g.common_dir);
        }
    }
    w.push(state_root.to_path_buf());
    if let Ok(c) = crate::statedir::claude_config_dir() {
        w.push(c.clone());
        // Without CLAUDE_CONFIG_DIR, Claude Code also keeps ~/.claude.json.
        if let Some(h) = c.parent() {
            w.push(h.join(".claude.json"));
        }
    }
    w.push("/tmp".into());
    let mut out: Vec<PathBuf> = Vec::new();
    for p in w {
        if p.exists() && !out.iter().any(|q| p.starts_with(q)) {
            out.retain(|q| !q.starts_with(&p));
            out.push(p);
        }
    }
    out
}

/// A program given with a relative path (`./agent`) made absolute, since
/// the agent runs elsewhere; a bare name is left for the PATH search.
fn absolute_program(p: String) -> String {
    if p.contains('/')
        && !p.starts_with('/')
        && let Ok(cwd) = std::env::current_dir()
    {
        let abs: PathBuf = cwd.join(&p).components().collect();
        return abs.to_string_lossy().into_owned();
    }
    p
}

/// `name` found in `$PATH` (or as given when it holds a slash).
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| runnable(p))
}

/// Take `name`'s liveness lock. A running agent holds it for as long as it
/// runs; a reader testing liveness holds it shared for an instant, so wait
/// briefly before calling it taken.
pub fn take_lock(agent: &AgentDir) -> Result<File> {
    lock::exclusive_within(agent.lock_path(), Duration::from_millis(200)).map_err(|e| {
        if exit::code_of(&e) == TEMPFAIL {
            fail(NO, format!("agent {} is already running", agent.name))
        } else {
            e
        }
    })
}

/// Prepare a start of agent `o.name` and take its lock: nothing is written
/// before the lock is ours, so of two concurrent starts exactly one runs.
pub fn prepare(state: &StateDir, o: Options) -> Result<(Plan, File)> {
    let agent = AgentDir::new(state, &o.name)?;
    agent.ensure(state)?;
    let held = take_lock(&agent)?;
    prepare_locked(state, o, held)
}

/// `prepare` for a caller that already holds the agent's liveness lock
/// (`held`, from `take_lock` or `lock::try_exclusive` on
/// `AgentDir::lock_path`), e.g. to reserve a name before deciding what the
/// agent will do.
pub fn prepare_locked(state: &StateDir, o: Options, held: File) -> Result<(Plan, File)> {
    let agent = AgentDir::new(state, &o.name)?;
    agent.ensure(state)?;
    // From here on, paths handed to the agent must not depend on our cwd.
    let root = std::fs::canonicalize(state.root())
        .with_context(|| format!("cannot resolve {}", state.root().display()))?;
    let state = StateDir::at(root);

    let prev_meta = agent.read_meta().ok().flatten();
    let prev_status = agent.read_status().ok().flatten();
    if let Some(ps) = &prev_status
        && ps.state.is_live()
    {
        // The last supervisor died without cleaning up: end what is left.
        crate::agent::kill_leftovers(&state, ps);
    }
    let base = if o.resume {
        prev_meta.ok_or_else(|| no_session(&o.name))?
    } else {
        Meta::default()
    };
    let session_id = session_to_use(&o, &base, prev_status.as_ref())?;
    let (worktree, cwd) = working_directory(&state, &o, &base)?;
    let meta = new_meta(&state, &o, base, session_id, worktree, cwd)?;
    crate::names::check("channel", &meta.channel)?;
    check_bypass(&meta)?;
    // Before anything is written: an unknown profile starts nothing.
    let auth = crate::profile::AgentAuth::of(meta.profile.as_deref())?;
    let idle_exit = meta.idle_exit_ms.map(Duration::from_millis);
    let bwrap = if meta.sandbox {
        Some(find_program("bwrap").ok_or_else(|| {
            fail(
                UNAVAILABLE,
                "--sandbox needs bubblewrap (bwrap), which is not installed or not in PATH",
            )
        })?)
    } else {
        None
    };
    let status = starting_status(&o, &meta, prev_status);
    write_start_files(&state, &agent, &meta, &status)?;
    Ok((
        Plan {
            state,
            agent,
            meta,
            resume: o.resume,
            prompt: o.prompt.filter(|p| !p.trim().is_empty()),
            idle_exit,
            bwrap,
            status,
            auth,
        },
        held,
    ))
}

fn no_session(name: &str) -> anyhow::Error {
    fail(
        DATAERR,
        format!("cannot resume {name}: it has no saved session"),
    )
}

/// The session to start: a new one, or on `--resume` the last one the
/// agent reported (else the one it was started with).
fn session_to_use(o: &Options, base: &Meta, prev: Option<&Status>) -> Result<String> {
    let session_id = if o.resume {
        prev.and_then(|s| s.session_id.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| base.session_id.clone())
    } else {
        id::new_uuid()
    };
    if session_id.is_empty() {
        return Err(no_session(&o.name));
    }
    Ok(session_id)
}

/// The agent's worktree (when it has one) and its working directory,
/// canonical: `--worktree`, else `--cwd`, else what a resumed agent had,
/// else the current directory.
fn working_directory(
    state: &StateDir,
    o: &Options,
    base: &Meta,
) -> Result<(Option<PathBuf>, PathBuf)> {
    let worktree = if o.worktree {
        Some(worktree_path(state, &o.name)?)
    } else if o.cwd.is_some() {
        None
    } else {
        base.worktree.clone()
    };
    let cwd = match (&worktree, &o.cwd) {
        (Some(w), _) => w.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) if o.resume && !base.cwd.as_os_str().is_empty() => base.cwd.clone(),
        (None, None) => std::env::current_dir().context("cannot read the current directory")?,
    };
    let cwd = std::fs::canonicalize(&cwd)
        .map_err(|e| fail(DATAERR, format!("working directory {}: {e}", cwd.display())))?;
    if !cwd.is_dir() {
        return Err(fail(
            DATAERR,
            format!("{} is not a directory", cwd.display()),
        ));
    }
    Ok((worktree, cwd))
}

/// How the agent starts: the options given, else (on `--resume`) what
/// `base` recorded, else defaults.
fn new_meta(
    state: &StateDir,
    o: &Options,
    base: Meta,
    session_id: String,
    worktree: Option<PathBuf>,
    cwd: PathBuf,
) -> Result<Meta> {
    let mut o = o.clone();
    // A fresh start takes what the options leave open from the settings
    // files; a resume from what the last start recorded.
    let settings = if o.resume {
        None
    } else {
        Some(crate::config::Settings::load()?)
    };
    if let Some(s) = &settings {
        apply_settings(&mut o, s);
    }
    let permissions = crate::permissions::resolve(
        &o.permissions,
        base.permissions.as_ref().filter(|_| o.resume),
        &cwd,
    )?;
    let system_prompt = match &settings {
        Some(_) if !o.no_coworker_prompt => Some(crate::prompts::compose(
            crate::prompts::Role::Coworker,
            crate::config::project_dir(&cwd).as_deref(),
        )?),
        Some(_) => None,
        None => base.system_prompt.clone(),
    };
    let add_dirs = if o.add_repos.is_empty() && o.resume {
        base.add_dirs.clone()
    } else {
        other_worktrees(&o.name, &o.add_repos)?
    };
    let pick = |new: Option<String>, old: Option<String>| new.or(old);
    Ok(Meta {
        name: o.name.clone(),
        session_id,
        cwd,
        worktree,
        task: pick(o.task, base.task.clone()),
        // One list for the whole team: the state directory's, unless named.
        task_list: pick(o.task_list, base.task_list.clone())
            .or_else(|| Some(crate::tasks::default_list(state))),
        model: pick(o.model, base.model.clone()),
        role: pick(o.role, base.role.clone()),
        channel: o
            .channel
            .or(Some(base.channel.clone()).filter(|c| !c.is_empty()))
            .unwrap_or_else(crate::statedir::default_channel),
        agent_cmd: absolute_program(
            o.agent_cmd
                .or(Some(base.agent_cmd.clone()).filter(|c| !c.is_empty()))
                .unwrap_or_else(|| DEFAULT_AGENT_CMD.into()),
        ),
        extra_args: if o.extra_args.is_empty() && o.resume {
            base.extra_args.clone()
        } else {
            o.extra_args
        },
        sandbox: o.sandbox || (o.resume && base.sandbox),
        idle_exit_ms: o.idle_exit.map(|d| d.as_millis() as u64).or(if o.resume {
            base.idle_exit_ms
        } else {
            None
        }),
        permissions: Some(permissions),
        // A fresh start's base is empty: only a resume keeps its profile.
        profile: o.profile.or(base.profile.clone()),
        system_prompt,
        add_dirs,
        created: if o.resume && !base.created.is_empty() {
            base.created.clone()
        } else {
            time::now_stamp()
        },
    })
}

/// Fill what the flags and variables left open from the settings files.
fn apply_settings(o: &mut Options, s: &crate::config::Settings) {
    let set = |key: &str| s.is_set(key).then(|| s.text(key)).flatten();
    o.model = o.model.take().or_else(|| set("model"));
    o.channel = o.channel.take().or_else(|| set("channel"));
    o.agent_cmd = o.agent_cmd.take().or_else(|| set("agent-cmd"));
    o.profile = o.profile.take().or_else(|| set("profile"));
    let p = &mut o.permissions;
    if p.mode.is_none() && p.allow.is_empty() && p.file.is_none() {
        p.mode = set("permission-mode");
        p.allow = s.list("allow");
        p.file = s.path("permissions");
    }
}

/// A worktree for agent `name` in each of `repos` (made when missing).
fn other_worktrees(name: &str, repos: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for repo in repos {
        let repo = std::fs::canonicalize(repo)
            .map_err(|e| fail(DATAERR, format!("--add-repo {}: {e}", repo.display())))?;
        if crate::statedir::discover_git(&repo).is_none() {
            return Err(fail(
                DATAERR,
                format!("--add-repo {}: not inside a git repository", repo.display()),
            ));
        }
        let wt = crate::worktree::add(&crate::worktree::AddOptions {
            name: name.into(),
            repo: Some(repo),
            ..Default::default()
        })?;
        out.push(wt.path);
    }
    Ok(out)
}

/// The status a start begins from: `starting`, with the totals of earlier
/// runs when resuming.
fn starting_status(o: &Options, meta: &Meta, prev: Option<Status>) -> Status {
    let mut status = Status {
        name: o.name.clone(),
        session_id: Some(meta.session_id.clone()),
        model: meta.model.clone(),
        ..Status::default()
    };
    if o.resume
        && let Some(ps) = prev
    {
        status.turns = ps.turns;
        status.input_tokens = ps.input_tokens;
        status.output_tokens = ps.output_tokens;
        status.cache_read_tokens = ps.cache_read_tokens;
        status.cache_creation_tokens = ps.cache_creation_tokens;
        status.cost_usd = ps.cost_usd;
        status.events = ps.events;
        status.malformed = ps.malformed;
        status.inputs = ps.inputs;
        status.runs = ps.runs;
        status.model = ps.model.or(status.model);
    }
    status.state = State::Starting;
    status
}

/// Write what the start was decided to be: settings.json, meta.json and
/// status.json; a stop request left from before is dropped.
fn write_start_files(
    state: &StateDir,
    agent: &AgentDir,
    meta: &Meta,
    status: &Status,
) -> Result<()> {
    let settings = agent_settings(meta, state.root(), &mt_hook_program()?);
    let mut data = serde_json::to_vec_pretty(&settings)?;
    data.push(b'\n');
    fsutil::write_atomic(&agent.settings_path(), &data, false)?;
    agent.write_meta(meta)?;
    let _ = std::fs::remove_file(agent.stop_path());
    agent.write_status(status)?;
    Ok(())
}

/// Claude Code refuses `bypassPermissions` as root outside a sandbox: say so
/// before starting anything rather than let the agent fail.
fn check_bypass(meta: &Meta) -> Result<()> {
    let bypass =
        meta.permissions.as_ref().and_then(crate::permissions::mode) == Some("bypassPermissions");
    if bypass && !meta.sandbox && nix::unistd::geteuid().is_root() {
        return Err(fail(
            exit::USAGE,
            "permission mode bypassPermissions as root needs --sandbox \
             (Claude Code refuses it as root outside a sandbox)",
        ));
    }
    Ok(())
}

/// Start agent `o.name` in the background: prepare it, then hand it to a
/// detached supervisor. Returns the agent's pid once it has started; exit 1
/// when it is already running.
pub fn spawn_detached(state: &StateDir, o: Options) -> Result<i32> {
    let (plan, held) = prepare(state, o)?;
    run_detached(plan, held)
}

/// Run the supervisor here, until the agent ends; returns its exit code.
pub fn run_foreground(plan: Plan, held: File) -> Result<u8> {
    supervise::supervise(plan, held, None)
}

/// The hidden first argument that makes `mt-spawn` the detached supervisor
/// of an agent `run_detached` prepared (not a user interface: no man page).
pub const DETACHED_FLAG: &str = "--internal-detached-supervisor";

/// Start the supervisor detached (its own session, parent init) and return
/// once the agent has started, with its pid.
///
/// The supervisor is a fresh `mt-spawn` process, not a fork of the caller:
/// the caller may have threads (a lock-directory keeper, a waiter blocked on
/// a lock), and after `fork` only async-signal-safe work is allowed. Between
/// our fork and exec only `fcntl` runs; the new process re-reads the plan
/// from meta.json and status.json (written by `prepare`), inherits the
/// liveness lock and the handshake pipe, and forks itself once more (it is
/// single-threaded) so that the supervisor is nobody's child but init's.
pub fn run_detached(plan: Plan, held: File) -> Result<i32> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    let program = sibling_program("mt-spawn").ok_or_else(|| {
        fail(
            UNAVAILABLE,
            "cannot find mt-spawn beside this program or in PATH (it runs detached supervisors)",
        )
    })?;
    let (rd, wr) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("cannot make a pipe")?;
    let lock_fd = held.as_raw_fd();
    let pipe_fd = wr.as_raw_fd();
    let mut cmd = Command::new(&program);
    cmd.arg(DETACHED_FLAG)
        .arg(plan.state.root())
        .arg(&plan.agent.name)
        .arg(if plan.resume { "resume" } else { "new" })
        .arg(lock_fd.to_string())
        .arg(pipe_fd.to_string())
        // An agent starting an agent: the new supervisor is not part of the
        // caller's run, so it must not carry the caller's run marker.
        .env_remove(crate::infra::procs::RUN_VAR)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    // SAFETY: the closure only calls fcntl(2), which is async-signal-safe,
    // on descriptors this process owns until the exec.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [lock_fd, pipe_fd] {
                if nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    drop(wr);
    drop(held);
    if let Some(mut stdin) = child.stdin.take() {
        // A supervisor that failed early stops reading: its answer says why.
        let _ = stdin.write_all(plan.prompt.as_deref().unwrap_or("").as_bytes());
    }
    let _ = child.wait();
    let mut answer = String::new();
    File::from(rd)
        .read_to_string(&mut answer)
        .context("cannot read from the supervisor")?;
    parse_handshake(&answer)
}

/// The plan `prepare` recorded for agent `name` in the state directory at
/// `root`: meta.json and status.json, as a detached supervisor re-reads them.
pub fn recorded_plan(root: &Path, name: &str, resume: bool, prompt: String) -> Result<Plan> {
    let state = StateDir::at(root.to_path_buf());
    let agent = AgentDir::new(&state, name)?;
    let missing = |what: &str| fail(exit::SOFTWARE, format!("{name} has no {what}"));
    let meta = agent.read_meta()?.ok_or_else(|| missing("meta.json"))?;
    let status = agent.read_status()?.ok_or_else(|| missing("status.json"))?;
    // Read again here, so the key goes from its file to the agent only.
    let auth = crate::profile::AgentAuth::of(meta.profile.as_deref())?;
    let bwrap = if meta.sandbox {
        Some(
            find_program("bwrap")
                .ok_or_else(|| fail(UNAVAILABLE, "--sandbox needs bubblewrap (bwrap)"))?,
        )
    } else {
        None
    };
    Ok(Plan {
        state,
        agent,
        idle_exit: meta.idle_exit_ms.map(Duration::from_millis),
        meta,
        resume,
        prompt: Some(prompt).filter(|p| !p.trim().is_empty()),
        bwrap,
        status,
        auth,
    })
}

/// `mt-spawn DETACHED_FLAG ROOT NAME new|resume LOCK_FD PIPE_FD`, with the
/// prompt on standard input: become the detached supervisor. Returns the
/// exit code of this (intermediate) process.
pub fn detached_main(args: &[OsString]) -> u8 {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let fd_at = |i: usize| -> Option<i32> {
        std::str::from_utf8(args.get(i)?.as_bytes())
            .ok()?
            .parse()
            .ok()
            .filter(|fd| *fd > 2)
    };
    let (Some(lock_fd), Some(pipe_fd), Some(root), Some(name), Some(mode)) = (
        fd_at(3),
        fd_at(4),
        args.first(),
        args.get(1).and_then(|a| a.to_str()),
        args.get(2).and_then(|a| a.to_str()),
    ) else {
        exit::warn(format_args!("{DETACHED_FLAG} is for mt-spawn's own use"));
        return exit::USAGE;
    };
    // SAFETY: our parent passed these two descriptors, open, for us alone.
    let held = unsafe { File::from_raw_fd(lock_fd) };
    let mut handshake = unsafe { File::from_raw_fd(pipe_fd) };
    for fd in [lock_fd, pipe_fd] {
        // The agent must not inherit them.
        // SAFETY: fcntl on descriptors we own.
        unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC) };
    }
    let mut prompt = Vec::new();
    let plan = std::io::stdin()
        .lock()
        .read_to_end(&mut prompt)
        .context("cannot read the prompt")
        .and_then(|_| {
            let prompt = String::from_utf8(prompt)
                .map_err(|_| fail(DATAERR, "the prompt is not valid UTF-8"))?;
            recorded_plan(Path::new(root), name, mode == "resume", prompt)
        });
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            let code = exit::code_of(&e);
            let msg = format!("{e:#}").replace('\n', " ");
            let _ = writeln!(handshake, "err {code} {msg}");
            return code;
        }
    };
    run_forked(plan, held, handshake.into())
}

/// In a fresh, single-threaded process: a new session, then a child that
/// supervises while this process exits (the supervisor's parent is init).
fn run_forked(plan: Plan, held: File, handshake: OwnedFd) -> u8 {
    use nix::unistd::{ForkResult, fork, setsid};
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let _ = setsid();
    // SAFETY: this process was just executed and has started no thread.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let code = detached_supervisor(plan, held, handshake);
            std::process::exit(code as i32);
        }
        Ok(ForkResult::Parent { .. }) => 0,
        Err(e) => {
            let mut h = File::from(handshake);
            let _ = writeln!(h, "err {} cannot fork: {e}", exit::SOFTWARE);
            exit::SOFTWARE
        }
    }
}

/// A program of this package: beside the running one (where `make install`
/// and `cargo install` put every tool; for a test, one directory up from
/// `deps/`), else from PATH.
pub fn sibling_program(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok();
    let dir = exe.as_deref().and_then(Path::parent);
    let mut near = vec![];
    if let Some(d) = dir {
        near.push(d.join(name));
        if d.file_name().is_some_and(|n| n == "deps")
            && let Some(up) = d.parent()
        {
            near.push(up.join(name));
        }
    }
    near.into_iter()
        .find(|p| p.is_file())
        .or_else(|| find_program(name))
}

fn parse_handshake(answer: &str) -> Result<i32> {
    let line = answer.lines().next().unwrap_or("");
    if let Some(pid) = line.strip_prefix("ok ") {
        return pid.trim().parse().context("bad answer from the supervisor");
    }
    if let Some(rest) = line.strip_prefix("err ") {
        let (code, msg) = rest
            .split_once(' ')
            .unwrap_or((rest, "the agent did not start"));
        return Err(fail(code.parse().unwrap_or(exit::SOFTWARE), msg));
    }
    Err(fail(
        exit::SOFTWARE,
        "the supervisor ended before starting the agent (see stderr.log)",
    ))
}

/// Body of the detached supervisor: standard streams away from the caller's
/// terminal (stderr into the agent's stderr.log), then supervise.
fn detached_supervisor(plan: Plan, held: File, handshake: OwnedFd) -> u8 {
    use std::os::fd::AsRawFd;
    close_other_fds(&[held.as_raw_fd(), handshake.as_raw_fd()]);
    let _ = nix::unistd::chdir("/");
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&null);
    }
    if let Ok(log) = fsutil::open_append(&plan.agent.stderr_path()) {
        let _ = nix::unistd::dup2_stderr(&log);
    }
    let name = plan.agent.name.clone();
    match supervise::supervise(plan, held, Some(File::from(handshake))) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mt-spawn: {name}: {e:#}");
            exit::code_of(&e)
        }
    }
}

/// Close every descriptor above 2 but `keep`: a detached supervisor must not
/// hold what its caller had open (a pipe it waits on, a lock).
fn close_other_fds(keep: &[std::os::fd::RawFd]) {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: nothing else in this process uses these descriptors
            // (the read_dir handle among them is already closed).
            unsafe { nix::libc::close(fd) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line() {
        let meta = Meta {
            name: "york".into(),
            session_id: "S".into(),
            model: Some("opus".into()),
            role: Some("reviewer".into()),
            extra_args: vec!["--max-turns".into(), "3".into()],
            ..Meta::default()
        };
        assert_eq!(
            agent_args(&meta, false, Path::new("/a/s.json")).join(" "),
            "-p --verbose --output-format stream-json --input-format stream-json \
             --session-id S --settings /a/s.json --model opus --append-system-prompt reviewer \
             --max-turns 3"
        );
        assert!(
            agent_args(&meta, true, Path::new("/a/s.json"))
                .join(" ")
                .contains("--resume S --settings /a/s.json --model")
        );
    }

    #[test]
    fn bwrap_command_line() {
        let a = bwrap_args(
            Path::new("/w/york"),
            &[PathBuf::from("/w/york"), PathBuf::from("/tmp")],
            "claude",
            &["-p".into()],
        );
        let s: Vec<String> = a.iter().map(|x| x.to_string_lossy().into_owned()).collect();
        assert_eq!(
            s.join(" "),
            "--ro-bind / / --dev /dev --proc /proc --bind /w/york /w/york --bind /tmp /tmp \
             --die-with-parent --chdir /w/york -- claude -p"
        );
    }

    #[test]
    fn sandbox_binds_existing_paths_once() {
        let d = tempfile::tempdir().unwrap();
        let cwd = d.path().join("w");
        std::fs::create_dir_all(cwd.join("sub")).unwrap();
        let st = d.path().join("mt");
        std::fs::create_dir_all(&st).unwrap();
        let w = sandbox_writable(&cwd.join("sub"), &[], &st);
        // Everything needed is covered, and no bind is inside another.
        for need in [cwd.join("sub"), st.clone(), PathBuf::from("/tmp")] {
            assert!(w.iter().any(|p| need.starts_with(p)), "{need:?} in {w:?}");
        }
        for a in &w {
            assert_eq!(w.iter().filter(|b| a.starts_with(b)).count(), 1, "{w:?}");
        }
        assert!(!w.contains(&d.path().join("missing")));
    }

    #[test]
    fn handshake() {
        assert_eq!(parse_handshake("ok 42\n").unwrap(), 42);
        let e = parse_handshake("err 69 no such program\n").unwrap_err();
        assert_eq!(exit::code_of(&e), 69);
        assert_eq!(e.to_string(), "no such program");
        assert!(parse_handshake("").is_err());
    }
}
