//! External tools a test runs (htpasswd, openssl, ...): found on PATH or a panic that
//! names the Debian package to install; their output read as one trimmed line.
//!
//! Data: tool names, package names, argument lists. May use std and `wire::show`.

use super::show;
use std::process::Command;

/// The tool an auth test needs: its path, or a panic that names the package to install
/// (tests never skip silently, with or without CI=true).
pub fn require_tool(tool: &str, package: &str) -> String {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => p.to_string_lossy().into_owned(),
        None => panic!(
            "`{tool}` is not installed: install the Debian package {package} \
             (listed in scripts/deps/auth.txt; scripts/test installs it as root)"
        ),
    }
}

/// Runs a hash tool and returns its stdout's first line, trimmed; panics with its stderr.
pub fn tool_output(tool: &str, package: &str, args: &[&str]) -> String {
    let path = require_tool(tool, package);
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {tool} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        show(&out.stderr)
    );
    show(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}
