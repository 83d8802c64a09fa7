//! File::Basename and Cwd::abs_path as Perl computes them.

use crate::config::perl::builtins::{abs_path, basename, dirname, normalize_path};

#[test]
fn file_basename_like_perl() {
    // Expected values are Perl's own File::Basename results.
    let table: &[(&str, &str, &str)] = &[
        ("/a/b/c", "/a/b", "c"),
        ("/a/b/", "/a", "b"),
        ("a", ".", "a"),
        ("a/", ".", "a"),
        ("/", "/", "/"),
        ("", ".", "./"),
        ("//a//", "/", "a"),
        ("a/b", "a", "b"),
        ("./x", ".", "x"),
        ("..", ".", ".."),
        ("/a//b///", "/a", "b"),
    ];
    for (path, dir, base) in table {
        assert_eq!(dirname(path), *dir, "dirname {path:?}");
        assert_eq!(basename(path, &[]), *base, "basename {path:?}");
    }
    let sfx = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(basename(".conf", &sfx(&[".conf"])), ".conf");
    assert_eq!(basename("a.tar.gz", &sfx(&[".gz", ".tar"])), "a");
}

#[test]
fn abs_path_normalises_missing_paths() {
    assert_eq!(normalize_path("/a/./b/../../../c//d/"), "/c/d");
    assert_eq!(normalize_path("a/../../b"), "../b");
    assert_eq!(normalize_path("."), ".");
    assert_eq!(abs_path("/no-such-dir-xyz/./q/../f"), "/no-such-dir-xyz/f");
    let cwd = std::env::current_dir().unwrap_or_default();
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    assert_eq!(
        abs_path("no-such-file-xyz"),
        format!("{}/no-such-file-xyz", cwd.to_string_lossy())
    );
    assert_eq!(abs_path("/"), "/");
}
