//! The `realplexor-loadtest` binary's command line, run as a process: `--help` and `-h`
//! print the usage on stdout and exit 0; a missing or unknown scenario, or a bad option,
//! exits non-zero with the message and the usage on stderr. No server is started and no
//! connection is made.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_realplexor-loadtest"))
        .args(args)
        .output()
        .expect("the loadtest binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["publish", "--help"],
        &["bogus", "-h"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {o:?}");
        let out = text(&o.stdout);
        assert!(
            out.starts_with("usage: realplexor-loadtest"),
            "{args:?}: {out}"
        );
        assert!(out.contains("SCENARIO: idle | fanout"), "{out}");
        assert!(o.stderr.is_empty(), "{args:?}: {}", text(&o.stderr));
    }
}

#[test]
fn missing_or_unknown_scenario_fails_with_the_usage_on_stderr() {
    for (args, msg) in [
        (&[][..], "missing SCENARIO"),
        (&["--quiet"], "missing SCENARIO"),
        (&["bogus"], "unknown scenario bogus"),
        (&["idle", "--bogus", "1"], "unknown option --bogus"),
        (&["idle"], "give --server-cmd, or both --wait and --in"),
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        assert!(o.stdout.is_empty(), "{args:?}: {}", text(&o.stdout));
        let err = text(&o.stderr);
        assert!(
            err.starts_with(&format!("realplexor-loadtest: {msg}\n")),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("usage: realplexor-loadtest"),
            "{args:?}: {err}"
        );
    }
}
