//! mt-web in a real browser: Debian's Chromium, headless, driven over the
//! DevTools protocol (support/browser.rs), against the real binaries.
//! Plain HTTP checks speak to the server over a TcpStream.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use crate::support::browser::Browser;
use crate::support::{Env, text, wait_for};

/// A running mt-web, killed when dropped.
struct Web {
    child: Child,
    addr: String,
    /// What it said on stderr when it started.
    said: String,
    _pipes: (std::process::ChildStdout, std::process::ChildStderr),
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Web {
    fn start(e: &Env, args: &[&str]) -> Web {
        let mut a = vec!["--as", "ana"];
        a.extend_from_slice(args);
        Web::start_with(e, &a, &[])
    }

    fn start_with(e: &Env, args: &[&str], vars: &[(&str, &str)]) -> Web {
        let mut c = e.cmd("mt-web");
        c.env_remove("MT_USER");
        for (k, v) in vars {
            c.env(k, v);
        }
        let mut child = c
            .arg("--print-address")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Kept open while the server runs, so its output never fails.
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let mut line = String::new();
        BufReader::new(&mut out).read_line(&mut line).unwrap();
        let mut said = String::new();
        BufReader::new(&mut err).read_line(&mut said).unwrap();
        let addr = line
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        assert!(!addr.is_empty(), "mt-web did not start: {said}");
        Web {
            child,
            addr,
            said,
            _pipes: (out, err),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// One raw request; the status and the body.
    fn request(&self, raw: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr.replace("0.0.0.0", "127.0.0.1")).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        (status, body)
    }

    fn get(&self, path: &str, extra: &str) -> (u16, String) {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{extra}Connection: close\r\n\r\n",
            self.addr
        ))
    }

    fn post(&self, path: &str, headers: &str, body: &str) -> (u16, String) {
        self.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        ))
    }

    fn csrf(&self) -> String {
        let (_, b) = self.get("/api/session", "");
        serde_json::from_str::<Value>(&b).unwrap()["csrf"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn records(e: &Env) -> Vec<Value> {
    e.ok("mt-read", &["--all", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Open `path` and wait for the page to be drawn and, on a channel, live.
fn open(b: &mut Browser, w: &Web, path: &str) {
    b.goto(&w.url(path));
    b.wait_until(
        "the page",
        "document.body && document.body.dataset.ready === '1'",
    );
    if path.starts_with("/c/") {
        b.wait_until("the live stream", "document.body.dataset.live === '1'");
    }
}

fn shown_seqs(b: &mut Browser) -> Vec<u64> {
    b.eval("[...document.querySelectorAll('.msg')].map(m => Number(m.dataset.seq))")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

#[test]
fn a_shell_post_appears_live_and_a_page_post_is_read_back() {
    let Some(mut b) =
        Browser::launch("web::a_shell_post_appears_live_and_a_page_post_is_read_back")
    else {
        return;
    };
    let e = Env::new();
    e.ok("mt-post", &["first, before the page"]);
    let w = Web::start(&e, &["-l", "127.0.0.1:0"]);
    open(&mut b, &w, "/c/general");
    assert_eq!(shown_seqs(&mut b), [1]);

    let t0 = std::time::Instant::now();
    e.ok("mt-post", &["@ana from the shell, see #review and #12"]);
    b.wait_until("the shell's post", "window.mtShown === 2");
    eprintln!("a post reached the page in {:?}", t0.elapsed());
    // Mentions of the person are marked; #channel and task ids are links.
    assert_eq!(
        b.eval("document.querySelector('#m2').classList.contains('mention')"),
        json!(true)
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('#m2 a')].map(a => a.getAttribute('href'))"),
        json!(["/c/review", "/tasks#task-12"])
    );

    b.eval(
        "document.querySelector('form.say textarea').value = 'from the page'; \
         document.querySelector('form.say button').click(); true",
    );
    b.wait_until("the page's post", "window.mtShown === 3");
    let recs = records(&e);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[2]["from"], "ana");
    assert_eq!(recs[2]["content"], "from the page");

    // The person's cursor follows what the page showed; the lead's does not
    // move: reading in the browser takes nothing from the lead's hooks.
    wait_for("the person's cursor", || {
        e.state.join("cursors/ana/general.json").is_file()
            && crate::support::read_json(&e.state.join("cursors/ana/general.json"))["seq"] == 3
    });
    assert!(!e.state.join("cursors/lead").exists());
    assert_eq!(
        e.run("mt-read", &["-q", "--as", "lead"]).status.code(),
        Some(0)
    );
    let (_, list) = w.get("/api/channels", "");
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap()[0]["unread"],
        0
    );
}

#[test]
fn hostile_text_shows_as_text_and_runs_nothing() {
    let Some(mut b) = Browser::launch("web::hostile_text_shows_as_text_and_runs_nothing") else {
        return;
    };
    let e = Env::new();
    let hostile = [
        "<script>window.pwned = 1</script>",
        "<img src=x onerror=\"window.pwned = 2\">",
        "<a href=\"javascript:window.pwned = 3\">click</a> javascript:window.pwned=4",
        "<svg onload=\"window.pwned = 5\"></svg><iframe src=\"javascript:parent.pwned=6\"></iframe>",
        "\u{1b}[31mred\u{1b}[0m\u{7}bell\u{1}soh\u{202e}reversed",
        "#<img/src=x/onerror=window.pwned=7> @<b>x</b>",
    ];
    for h in hostile {
        e.ok("mt-post", &[h]);
    }
    let long = "x".repeat(100_000);
    e.ok("mt-post", &[&long]);
    let w = Web::start(&e, &["-l", "127.0.0.1:0"]);
    b.size(390, 844);
    open(&mut b, &w, "/c/general");
    // The same texts again, live.
    for h in hostile {
        e.ok("mt-post", &[h]);
    }
    b.wait_until("every message", "window.mtShown === 13");
    let texts = b.eval("[...document.querySelectorAll('.msg .text')].map(t => t.textContent)");
    let texts = texts.as_array().unwrap();
    for (i, h) in hostile.iter().enumerate() {
        let shown = |t: &Value| t.as_str().unwrap().to_string();
        let expect: String = h
            .chars()
            .map(|c| match c as u32 {
                n @ 0..=0x1f => char::from_u32(0x2400 + n).unwrap(),
                0x202e => '\u{fffd}',
                _ => c,
            })
            .collect();
        assert_eq!(shown(&texts[i]), expect, "first view");
        assert_eq!(shown(&texts[i + 7]), expect, "live");
    }
    assert_eq!(b.eval("typeof window.pwned"), json!("undefined"));
    assert_eq!(
        b.eval("document.querySelectorAll('.log script, .log img, .log svg, .log iframe, .log b').length"),
        json!(0)
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('a')].filter(a => !/^(\\/|#)/.test(a.getAttribute('href'))).length"),
        json!(0),
        "only links inside the page"
    );
    // A very long line wraps: nothing wider than the phone's screen.
    assert_eq!(
        b.eval("document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true)
    );
}

#[test]
fn the_page_reconnects_after_a_restart_and_misses_and_repeats_nothing() {
    let Some(mut b) =
        Browser::launch("web::the_page_reconnects_after_a_restart_and_misses_and_repeats_nothing")
    else {
        return;
    };
    let e = Env::new();
    for i in 1..=3 {
        e.ok("mt-post", &[&format!("before {i}")]);
    }
    let w = Web::start(&e, &["-l", "127.0.0.1:0"]);
    let port = w.port();
    open(&mut b, &w, "/c/general");
    e.ok("mt-post", &["live 4"]);
    b.wait_until("record 4", "window.mtShown === 4");
    drop(w);
    b.wait_until("the page to notice", "document.body.dataset.live === '0'");
    for i in 5..=7 {
        e.ok("mt-post", &[&format!("while down {i}")]);
    }
    let w = Web::start(&e, &["-l", &format!("127.0.0.1:{port}")]);
    e.ok("mt-post", &["after 8"]);
    b.wait_until("record 8", "window.mtShown === 8");
    e.ok("mt-post", &["after 9"]);
    b.wait_until("record 9", "window.mtShown === 9");
    assert_eq!(shown_seqs(&mut b), (1..=9).collect::<Vec<_>>());
    drop(w);
}

#[test]
fn without_the_token_every_request_is_refused() {
    let e = Env::new();
    // Any address but loopback needs the token; connections stay on
    // loopback all the same.
    let w = Web::start(&e, &["-l", "0.0.0.0:0"]);
    assert!(
        w.said.contains("?token="),
        "the token is shown once: {}",
        w.said
    );
    let token = std::fs::read_to_string(e.state.join("web/token")).unwrap();
    let token = token.trim();
    assert!(w.said.contains(token));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(e.state.join("web/token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    for path in [
        "/",
        "/app.js",
        "/api/session",
        "/api/channels",
        "/api/channel/general",
        "/events/general",
        "/api/team",
        "/api/tasks",
        "/nothing",
    ] {
        assert_eq!(w.get(path, "").0, 401, "{path}");
        assert_eq!(w.get(path, "Cookie: mt_token=wrong\r\n").0, 401, "{path}");
    }
    assert_eq!(w.post("/api/post", "", "{}").0, 401);
    assert_eq!(
        w.get("/api/channels", &format!("Cookie: mt_token={token}\r\n"))
            .0,
        200
    );
    assert_eq!(
        w.get(
            "/api/channels",
            &format!("Authorization: Bearer {token}\r\n")
        )
        .0,
        200
    );
    let (code, _) = w.get(&format!("/?token={token}"), "");
    assert_eq!(code, 303);
    drop(w);
    // Shown once: a later start keeps the token and does not print it.
    let w = Web::start(&e, &["-l", "0.0.0.0:0"]);
    assert!(!w.said.contains(token), "{}", w.said);

    let Some(mut b) = Browser::launch("web::without_the_token_every_request_is_refused") else {
        return;
    };
    e.ok("mt-post", &["secret plans"]);
    let local = w.url("/c/general").replace("0.0.0.0", "127.0.0.1");
    b.goto(&local);
    b.wait_until("the refusal", "document.readyState === 'complete'");
    let body = b.eval("document.body.innerText");
    assert!(
        body.as_str().unwrap().contains("token is required"),
        "{body}"
    );
    // The address with the token sets the cookie and the page works.
    b.goto(&format!("{local}?token={token}"));
    b.wait_until("the page", "document.body.dataset.ready === '1'");
    assert_eq!(shown_seqs(&mut b), [1]);
}

#[test]
fn a_forged_cross_site_post_is_refused() {
    let e = Env::new();
    let w = Web::start(&e, &["-l", "127.0.0.1:0"]);
    let csrf = w.csrf();
    let body = r#"{"channel":"general","text":"forged"}"#;
    let own = format!("Origin: http://{}\r\n", w.addr);
    let json = "Content-Type: application/json\r\n";
    let token = format!("X-MT-CSRF: {csrf}\r\n");
    for (headers, code, why) in [
        (
            format!("Origin: http://evil.example\r\n{json}{token}"),
            403,
            "another origin",
        ),
        (format!("{json}{token}"), 403, "no origin"),
        (format!("{own}{json}"), 403, "no anti-forgery token"),
        (
            format!("{own}{json}X-MT-CSRF: {}\r\n", "0".repeat(64)),
            403,
            "a wrong token",
        ),
        (
            format!("{own}Content-Type: text/plain\r\n{token}"),
            415,
            "a form's type",
        ),
    ] {
        assert_eq!(w.post("/api/post", &headers, body).0, code, "{why}");
    }
    assert_eq!(w.get("/api/channels", "").1, "[]", "nothing was posted");
    assert_eq!(
        w.post("/api/post", &format!("{own}{json}{token}"), body).0,
        200
    );
    assert_eq!(records(&e).len(), 1);

    let Some(mut b) = Browser::launch("web::a_forged_cross_site_post_is_refused") else {
        return;
    };
    // A page on another origin (another port) tries a form post and a
    // script post.
    let evil = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let evil_addr = evil.local_addr().unwrap();
    let target = w.url("/api/post");
    let page = format!(
        "<!doctype html><form id=f method=post enctype=text/plain action=\"{target}\">\
         <input name='{{\"channel\":\"general\",\"text\":\"forged by form\",\"x\":\"' value='\"}}'></form>\
         <script>fetch('{target}', {{method:'POST', mode:'no-cors', headers:{{'Content-Type':'text/plain'}}, \
         body: JSON.stringify({{channel:'general', text:'forged by script'}})}}).finally(() => \
         {{ document.title = 'sent'; document.getElementById('f').submit(); }});</script>"
    );
    std::thread::spawn(move || {
        for conn in evil.incoming().take(4) {
            let Ok(mut s) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    b.goto(&format!("http://{evil_addr}/"));
    b.wait_until(
        "the form to be sent",
        &format!("location.href.startsWith('{target}')"),
    );
    b.wait_until("its answer", "document.readyState === 'complete'");
    let recs = records(&e);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["content"], "forged");
    assert_eq!(recs[0]["from"], "ana");
}

#[test]
fn screenshots_of_the_pages_at_phone_and_desktop_sizes() {
    let Some(mut b) = Browser::launch("web::screenshots_of_the_pages_at_phone_and_desktop_sizes")
    else {
        return;
    };
    let e = Env::with_repo();
    e.spawn("york", "", &["--task", "1"]);
    e.spawn("park", "rate-limit", &[]);
    e.wait_idle("york");
    wait_for("park to start", || {
        e.agent("park").join("status.json").is_file()
    });
    e.ok("mt-task", &["create", "Write the parser"]);
    e.ok(
        "mt-task",
        &["create", "Review the parser", "--blocked-by", "1"],
    );
    e.ok("mt-task", &["claim", "1", "--as", "york"]);
    e.ok("mt-post", &["@york can you review the parser? see #12"]);
    e.cmd("mt-post")
        .env("MT_AGENT", "york")
        .args(["on it, @ana: the grammar is in #review"])
        .output()
        .unwrap();
    e.ok("mt-post", &["@ana a question for you"]);
    let w = Web::start(&e, &["-l", "127.0.0.1:0"]);

    open(&mut b, &w, "/team");
    b.wait_until(
        "the coworkers",
        "document.querySelectorAll('tr.agent').length === 2",
    );
    // A nudge from the page reaches the agent's inbox; stop ends it.
    b.eval(
        "const f = [...document.querySelectorAll('tr.agent')].find(r => r.querySelector('.name').textContent === 'york'); \
         f.querySelector('input').value = 'look at #review'; f.querySelector('form button').click(); true",
    );
    wait_for("the nudge", || {
        e.inbox("york")
            .iter()
            .any(|m| m.contains("look at #review"))
    });
    b.eval("window.confirm = () => true; [...document.querySelectorAll('tr.agent')].find(r => r.querySelector('.name').textContent === 'park').querySelector('button.stop').click(); true");
    wait_for("park to stop", || !e.running("park"));
    b.wait_until("the page to show it", "[...document.querySelectorAll('tr.agent')].some(r => r.querySelector('.name').textContent === 'park' && r.querySelector('.state').textContent !== 'idle')");
    // A task made on the page is on the list the tools read.
    open(&mut b, &w, "/tasks");
    b.eval(
        "document.querySelector('form.newtask input[name=subject]').value = 'Ship the web view'; \
         document.querySelector('form.newtask button').click(); true",
    );
    b.wait_until(
        "the new task",
        "document.querySelectorAll('.card').length === 3",
    );
    let listed = e.ok("mt-task", &["list", "--json"]);
    assert!(listed.contains("Ship the web view"), "{listed}");

    let last = records(&e).last().unwrap()["seq"].as_u64().unwrap();
    let on_channel = format!("window.mtShown === {last}");
    let mut shots = Vec::new();
    for (name, path, ready) in [
        ("channel", "/c/general", on_channel.as_str()),
        (
            "coworkers",
            "/team",
            "document.querySelectorAll('tr.agent').length === 2",
        ),
        (
            "tasks",
            "/tasks",
            "document.querySelectorAll('.card').length === 3",
        ),
    ] {
        for (wd, ht) in [(390, 844), (1280, 800)] {
            b.size(wd, ht);
            open(&mut b, &w, path);
            b.wait_until(name, ready);
            shots.push(b.screenshot(name, wd, ht));
        }
    }
    for s in shots {
        let png = std::fs::read(&s).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{}", s.display());
        assert!(png.len() > 2000, "{} looks empty", s.display());
    }
}

#[test]
fn the_person_is_mt_user_else_the_login_name_never_mt_agent() {
    let e = Env::new();
    let person = |w: &Web| {
        let (_, b) = w.get("/api/session", "");
        serde_json::from_str::<Value>(&b).unwrap()["person"].clone()
    };
    let login = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let w = Web::start_with(&e, &["-l", "127.0.0.1:0"], &[("MT_AGENT", "york")]);
    assert_eq!(person(&w), json!(login));
    let w = Web::start_with(
        &e,
        &["-l", "127.0.0.1:0"],
        &[("MT_AGENT", "york"), ("MT_USER", "bea")],
    );
    assert_eq!(person(&w), json!("bea"));
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let e = Env::new();
    let o = e.run("mt-web", &["--as", "lead", "-l", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(65));
    assert!(
        text(&o.stderr).starts_with("mt-web: the person cannot be 'lead'"),
        "{}",
        text(&o.stderr)
    );
    let o = e.run("mt-web", &["--as", "Bad Name", "-l", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(65), "{}", text(&o.stderr));
    assert!(text(&o.stderr).starts_with("mt-web: invalid person name"));
    let o = e.run("mt-web", &["-l", "nowhere"]);
    assert_eq!(o.status.code(), Some(2));

    let w = Web::start(&e, &["-l", "127.0.0.1:0"]);
    let busy = Web::start(&e, &["-l", "127.0.0.1:0"]);
    let o = e.run("mt-web", &["--as", "ana", "-l", &busy.addr]);
    assert_eq!(o.status.code(), Some(69));
    assert!(
        text(&o.stderr).starts_with("mt-web: cannot listen on"),
        "{}",
        text(&o.stderr)
    );

    // Oversized requests, other hosts, bad bodies.
    let big = "x".repeat(20_000);
    assert_eq!(w.get("/", &format!("X-Big: {big}\r\n")).0, 431);
    let csrf = w.csrf();
    let ok = format!(
        "Origin: http://{}\r\nContent-Type: application/json\r\nX-MT-CSRF: {csrf}\r\n",
        w.addr
    );
    let huge = format!(
        r#"{{"channel":"general","text":"{}"}}"#,
        "y".repeat(300_000)
    );
    assert_eq!(w.post("/api/post", &ok, &huge).0, 413);
    assert_eq!(w.post("/api/post", &ok, "{oops").0, 400);
    assert_eq!(
        w.post("/api/post", &ok, r#"{"channel":"No Such","text":"x"}"#)
            .0,
        400
    );
    assert_eq!(
        w.post("/api/post", &ok, r#"{"channel":"general","text":"  "}"#)
            .0,
        400
    );
    assert_eq!(
        w.request(&format!(
            "GET / HTTP/1.1\r\nHost: rebound.example:{}\r\n\r\n",
            w.port()
        ))
        .0,
        421
    );
    // A client that never finishes its request is dropped.
    let mut slow = TcpStream::connect(&w.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: ").unwrap();
    let mut out = String::new();
    slow.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");
    assert_eq!(records(&e).len(), 0);
}

/// The hot-path tools do not link the HTTP parser nor the server: no
/// function of either is in their symbol tables (`nm`, which comes with
/// the linker cargo uses), while mt-web's has both.
#[test]
fn the_hot_path_tools_do_not_link_the_server() {
    use crate::support::symbols;
    let web = symbols("mt-web");
    assert!(web.contains("httparse") && web.contains("serve_connection"));
    for bin in ["mt-post", "mt-read", "mt-hook"] {
        let s = symbols(bin);
        assert!(!s.contains("httparse"), "{bin} links httparse");
        assert!(!s.contains("serve_connection"), "{bin} links the server");
        assert!(!s.contains("3web"), "{bin} links mt::web");
    }
}

/// A record mt-sync brought from another host shows its sender as
/// name@host, the host's name as text like any other.
#[test]
fn a_record_from_another_host_shows_its_host() {
    let Some(mut b) = Browser::launch("web::a_record_from_another_host_shows_its_host") else {
        return;
    };
    let e = Env::new();
    e.ok("mt-post", &["written here"]);
    let seg = e.state.join("channels/general/00000000000000000001.jsonl");
    let imported = json!({
        "seq": 2, "id": "01M8TF3YY82RFEVXMWZDY8T382", "timestamp": "2026-12-02T04:10:03.592Z",
        "from": "york", "type": "text", "content": "written elsewhere", "channel": "general",
        "mentions": [], "origin": "build<b>x</b>", "origin_seq": 7,
    });
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    writeln!(f, "{imported}").unwrap();
    drop(f);
    let w = Web::start(&e, &["-l", "127.0.0.1:0"]);
    open(&mut b, &w, "/c/general");
    b.wait_until(
        "both messages",
        "document.querySelectorAll('.msg').length === 2",
    );
    assert_eq!(
        b.eval("[...document.querySelectorAll('.msg .from')].map(f => f.textContent)"),
        json!(["lead", "york@build<b>x</b>"])
    );
    assert_eq!(
        b.eval("document.querySelectorAll('.log b').length"),
        json!(0)
    );
}
