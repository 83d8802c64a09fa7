//! Whole files: the defaults' shape, override files, the fixtures' idiom, assignments,
//! code references and statements.

use super::*;

#[test]
fn default_config_shape() {
    let c = defaults();
    let expected = [
        ("SU_USER", s("nobody")),
        ("WAIT_TIMEOUT", Value::Int(300)),
        ("WAIT_MAXLEN", Value::Int(5120)),
        ("WAIT_ADDR", list(&["0.0.0.0:8088"])),
        ("IN_TIMEOUT", Value::Int(20)),
        ("IN_MAXLEN", Value::Int(204_800)),
        ("IN_ADDR", list(&["127.0.0.1:10010"])),
        ("ID_BINDINGS_SERVERS", list(&["127.0.0.1:11211"])),
        ("HOOK_CHECK_VISIBILITY", Value::Undef),
        ("JS_WAIT_RECONNECT_DELAY", Value::Num(0.01)),
        ("JS_WAIT_URI", s("/")),
        ("CHARSET", s("utf-8")),
        ("VERBOSITY", Value::Int(3)),
        ("MAX_MEM_MB", Value::Int(0)),
    ];
    assert_eq!(c.len(), expected.len());
    for (key, value) in expected {
        assert_eq!(c.get(key), Some(&value), "{key}");
    }
    assert_eq!(c["JS_WAIT_RECONNECT_DELAY"].to_perl_string(), "0.01");
}

#[test]
fn override_files_of_the_readme_form() {
    let c = eval_into(
            "$CONFIG{WAIT_ADDR} = [ '1.2.3.4:80' ];\n$CONFIG{IN_ADDR} = [ '5.6.7.8:10010' ];\nreturn 1;\n",
            defaults(),
        )
        .unwrap_or_default();
    assert_eq!(c["WAIT_ADDR"], list(&["1.2.3.4:80"]));
    assert_eq!(c["IN_ADDR"], list(&["5.6.7.8:10010"]));
    assert_eq!(c["WAIT_TIMEOUT"], Value::Int(300), "other keys are kept");
    let table: &[(&str, &str, Value)] = &[
        (
            "$CONFIG{MAX_MEM_MB} = 0.5;\n\nreturn 1;\n",
            "MAX_MEM_MB",
            Value::Num(0.5),
        ),
        (
            "$CONFIG{'OFFLINE_TIMEOUT'} = 2;",
            "OFFLINE_TIMEOUT",
            Value::Int(2),
        ),
        (
            "$CONFIG{\"CHARSET\"} = \"koi8-r\"\n",
            "CHARSET",
            s("koi8-r"),
        ),
        ("$CONFIG{ VERBOSITY } = 0; 1;", "VERBOSITY", Value::Int(0)),
        ("$main::CONFIG{VERBOSITY} = 1;", "VERBOSITY", Value::Int(1)),
        ("$::CONFIG{VERBOSITY} = 2;", "VERBOSITY", Value::Int(2)),
        (
            "$CONFIG{WAIT_ADDR} = ['a:1', 'b:2',];",
            "WAIT_ADDR",
            list(&["a:1", "b:2"]),
        ),
        (
            "$CONFIG{WAIT_ADDR} = [qw(a:1 b:2)];",
            "WAIT_ADDR",
            list(&["a:1", "b:2"]),
        ),
    ];
    for (text, key, value) in table {
        let c = ok(text);
        assert_eq!(c.get(*key), Some(value), "{text}");
    }
}

#[test]
fn fixture_idiom_dirname_of_abs_path_of_file() {
    let dir = std::env::temp_dir().join(format!("perlconf-idiom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_default();
    let conf = dir.join("iframe_stub.conf");
    let text = "use File::Basename;\nuse Cwd 'abs_path';\n\n$CONFIG{IFRAME_FILE} = dirname(abs_path(__FILE__)) . \"/iframe_stub.html\";\n$CONFIG{CHARSET} = \"utf-8\";\n\nreturn 1;\n";
    std::fs::write(&conf, text).unwrap_or_default();
    let mut config = ConfigMap::new();
    let result = eval_file(text, &conf.to_string_lossy(), &mut config);
    let real_dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    std::fs::remove_dir_all(&dir).unwrap_or_default();
    assert_eq!(result, Ok(()));
    let expected = format!("{}/iframe_stub.html", real_dir.to_string_lossy());
    assert_eq!(config.get("IFRAME_FILE"), Some(&Value::Str(expected)));
    assert_eq!(config.get("CHARSET"), Some(&s("utf-8")));
    // The qualified spellings do the same.
    let c = ok("$CONFIG{X} = File::Basename::dirname(Cwd::realpath('/a/../b/c.conf'));");
    assert_eq!(c["X"], s("/b"));
}

#[test]
fn values_may_refer_to_earlier_values() {
    let c = eval_into(
        "$CONFIG{WAIT_TIMEOUT} = $CONFIG{WAIT_TIMEOUT} * 2;\n\
             $CONFIG{OFFLINE_TIMEOUT} = $CONFIG{WAIT_TIMEOUT} + 1;\n\
             $CONFIG{CHARSET} .= '-x';\n\
             $CONFIG{FIRST} = $CONFIG{WAIT_ADDR}[0];\n\
             $CONFIG{MISSING} = $CONFIG{NO_SUCH_KEY};\n\
             $CONFIG{IN_MAXLEN} /= 2;\n\
             my $base = \"/srv\";\n\
             $CONFIG{USERS_FILE} = \"$base/users-$CONFIG{VERBOSITY}.htpasswd\";\n",
        defaults(),
    )
    .unwrap_or_default();
    assert_eq!(c["WAIT_TIMEOUT"], Value::Int(600));
    assert_eq!(c["OFFLINE_TIMEOUT"], Value::Int(601));
    assert_eq!(c["CHARSET"], s("utf-8-x"));
    assert_eq!(c["FIRST"], s("0.0.0.0:8088"));
    assert_eq!(c["MISSING"], Value::Undef);
    assert_eq!(c["IN_MAXLEN"], Value::Int(102_400));
    assert_eq!(c["USERS_FILE"], s("/srv/users-3.htpasswd"));
}

#[test]
fn hash_assignment_replaces_the_whole_hash() {
    let c = eval_into("%CONFIG = (A => 1, 'B', 2, \"C\" => [],);", defaults()).unwrap_or_default();
    assert_eq!(c.len(), 3);
    assert_eq!(c["A"], Value::Int(1));
    assert_eq!(c["B"], Value::Int(2));
    assert_eq!(c["C"], Value::List(vec![]));
    assert!(ok("%CONFIG = ();").is_empty());
    // Keeping the old contents is possible, as in Perl.
    let c = eval_into("%CONFIG = (%CONFIG, VERBOSITY => 0);", defaults()).unwrap_or_default();
    assert_eq!(c.len(), defaults().len());
    assert_eq!(c["VERBOSITY"], Value::Int(0));
    let c = eval_into("our %CONFIG;\nour %CONFIG = (X => 1);", defaults()).unwrap_or_default();
    assert_eq!(c.len(), 1);
}

#[test]
fn code_references_are_kept_as_text() {
    let text = "%CONFIG = (\n  HOOK_CHECK_VISIBILITY => sub { my $x = shift; return $x->{id} ne \"}\"; },\n  AFTER => 1,\n);\n";
    let c = ok(text);
    assert_eq!(
        c["HOOK_CHECK_VISIBILITY"],
        Value::Code("sub { my $x = shift; return $x->{id} ne \"}\"; }".to_string())
    );
    assert_eq!(c["AFTER"], Value::Int(1));
    assert_eq!(c["HOOK_CHECK_VISIBILITY"].to_perl_string(), "CODE");
    // Braces in comments and single quotes, and nested blocks, do not end the body.
    let text = "$CONFIG{H} = sub {\n  # a } in a comment\n  if ($_[0]) { return '}' }\n  return 1;\n};\n$CONFIG{N} = __LINE__;\n";
    let c = ok(text);
    assert!(
        matches!(&c["H"], Value::Code(t) if t.starts_with("sub {") && t.ends_with("return 1;\n}"))
    );
    assert_eq!(
        c["N"],
        Value::Int(6),
        "line counting continues after the body"
    );
    // A named sub is skipped as a statement.
    assert_eq!(
        ok("sub helper { return 2 }\n$CONFIG{A} = 1;")["A"],
        Value::Int(1)
    );
}

#[test]
fn statements() {
    let text = "=pod\n\n$CONFIG{IN_POD} = 1;\n\n=cut\nuse strict;\nuse warnings;\nno warnings 'once';\nuse POSIX qw(strftime);\nuse lib \"$FindBin::Bin/lib\";\nrequire Cwd;\nrequire 5.006;\npackage main;\nmy $x;\nour $y = 2;\n$y += 3;\nmy $z = $y * 2;\n$x = \"set\";\n;;\n1;\n$CONFIG{Z} = $z;\n$CONFIG{X} = $x;\n$CONFIG{LAST} = 'no semicolon'";
    let c = ok(text);
    assert_eq!(c.get("IN_POD"), None);
    assert_eq!(c["Z"], Value::Int(10));
    assert_eq!(c["X"], s("set"));
    assert_eq!(c["LAST"], s("no semicolon"));
    // `return` and `__END__` end the file; what follows is never read.
    let c = ok("$CONFIG{A} = 1;\nreturn 1;\n$CONFIG{B} = 2;\n");
    assert_eq!((c.len(), c.get("B")), (1, None));
    let c = ok("$CONFIG{A} = 1;\n__END__\n$CONFIG{B} = ???\n");
    assert_eq!((c.len(), c.get("B")), (1, None));
    let c = ok("$CONFIG{A} = 1;\nreturn\n");
    assert_eq!(c.len(), 1);
    // A later `my` shadows; the initialiser still sees the old value.
    let c = ok("my $v = 1; my $v = $v + 1; $CONFIG{V} = $v;");
    assert_eq!(c["V"], Value::Int(2));
}

/// Issue 18 #4: a line appended after `return 1;` was ignored without a word, syntax errors
/// included. Perl compiles the whole file and then stops running it at `return`: the rest
/// is read for errors, each statement is warned about with its line, and nothing it sets
/// is kept.
#[test]
fn statements_after_return_are_checked_and_warned_not_run() {
    let opts = EvalOptions::default();
    let text = "$CONFIG{A} = 1;\nreturn 1;\n$CONFIG{MAX_DATA_FOR_ID} = 5;\nmy $x = 2;\n\nuse strict;\n;\n$CONFIG{A} = $x;\n";
    let mut c = ConfigMap::new();
    let got = eval_file_with(text, FILE, &mut c, opts);
    let warned: Vec<String> = got.as_ref().map(|e| e.warnings.clone()).unwrap_or_default();
    assert_eq!(warned.len(), 3, "{got:?}");
    for (w, line) in warned.iter().zip([3, 4, 8]) {
        assert!(
            w.starts_with(&format!("{FILE}:{line}: statement after 'return' skipped")),
            "{w}"
        );
    }
    assert_eq!(c.len(), 1, "nothing after return is kept: {c:?}");
    assert_eq!(c["A"], Value::Int(1));
    assert_eq!(got.map(|e| e.lines.get("A").copied()), Ok(Some(1)));
    // A syntax error after `return` is an error, as in Perl.
    let e = eval("$CONFIG{A} = 1;\nreturn 1;\n$CONFIG{B} = ;\n").map(|_| ());
    assert_eq!(e.map_err(|e| e.line), Err(3));
    // The stock shape (one `return 1;` at the end) warns about nothing.
    let mut c = ConfigMap::new();
    let got = eval_file_with(DEFAULTS_SHAPE, FILE, &mut c, opts);
    assert_eq!(got.map(|e| e.warnings), Ok(vec![]));
    // `__END__` still ends the file unread, and so does a named sub's body stay unparsed.
    let mut c = ConfigMap::new();
    let got = eval_file_with(
        "return 1;\nsub f { ??? }\n__END__\n$CONFIG{B} = ???\n",
        FILE,
        &mut c,
        opts,
    );
    assert_eq!(got.map(|e| e.warnings), Ok(vec![]));
}

/// Issue 18 #8: `%CONFIG = ( WAIT_TIMEOUT => 10 );` in an override file (the default
/// file's style) wiped every default. With `merge_hash_assignment` it sets the keys it
/// lists, keeps the others and says so with file:line; without it, Perl's replacement.
#[test]
fn hash_assignment_in_an_override_merges_with_a_warning() {
    let merge = EvalOptions {
        merge_hash_assignment: true,
    };
    let mut c = defaults();
    let got = eval_file_with("\n%CONFIG = ( WAIT_TIMEOUT => 10 );\n", FILE, &mut c, merge);
    assert_eq!(c.len(), defaults().len());
    assert_eq!(c["WAIT_TIMEOUT"], Value::Int(10));
    assert_eq!(c["CHARSET"], s("utf-8"));
    let evaluated = got.unwrap_or_default();
    assert_eq!(evaluated.lines.get("WAIT_TIMEOUT"), Some(&2));
    assert_eq!(evaluated.warnings.len(), 1, "{evaluated:?}");
    let w = &evaluated.warnings[0];
    assert!(
        w.starts_with(&format!("{FILE}:2: '%CONFIG = (...)'")),
        "{w}"
    );
    assert!(w.contains("$CONFIG{KEY} = value;"), "{w}");
    // After `return`, only the skipped-statement warning.
    let mut c = defaults();
    let got = eval_file_with("return 1;\n%CONFIG = (A => 1);\n", FILE, &mut c, merge);
    let warnings = got.map(|e| e.warnings).unwrap_or_default();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("after 'return'"), "{warnings:?}");
    assert_eq!(c, defaults());
    // Listing every key (`%CONFIG = (%CONFIG, ...)`) loses nothing even in Perl: no warning.
    let mut c = defaults();
    let got = eval_file_with("%CONFIG = (%CONFIG, VERBOSITY => 0);", FILE, &mut c, merge);
    assert_eq!(got.map(|e| e.warnings), Ok(vec![]));
    assert_eq!(c["VERBOSITY"], Value::Int(0));
}
