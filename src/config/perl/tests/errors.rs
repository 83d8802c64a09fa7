//! Errors: each names the file, the line and the construct; deep nesting is an error.

use super::*;

fn error_of(text: &str) -> PerlError {
    match eval(text) {
        Ok(c) => panic!("expected an error for:\n{text}\ngot {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn errors_name_the_line_and_the_construct() {
    let table: &[(&str, usize, &str)] = &[
        (
            "$CONFIG{A} = 1;\n$CONFIG{B} = 2;\n$CONFIG{C} = \"abc;\n$CONFIG{D} = 4;\n",
            3,
            "unterminated string",
        ),
        (
            "$CONFIG{A} = 1;\nsystem(\"rm\");\n",
            2,
            "unsupported construct: 'system(...)'",
        ),
        (
            "$CONFIG{A} = 1;\n$CONFIG{B} = 2\n$CONFIG{C} = 3;\n",
            3,
            "expected ';' after statement, found '$CONFIG'",
        ),
        (
            "$CONFIG{A} = 1\nfoo;\n",
            2,
            "expected ';' after statement, found 'foo'",
        ),
        ("my $x = 1;\n\n$CONFIG{A} = $y;\n", 3, "unknown variable $y"),
        (
            "$CONFIG{A} = 1;\n$CONFIG{B} = \"a\n$nope\";\n",
            3,
            "unknown variable $nope in string",
        ),
        ("$CONFIG{A} = 1;\n$CONFIG{\n", 2, "unclosed '{'"),
        (
            "$CONFIG{A} = 1;\n$CONFIG{WAIT_ADDR",
            2,
            "expected '}' after $CONFIG{WAIT_ADDR, found end of file",
        ),
        ("$CONFIG{WAIT_ADDR = 1;\n", 1, "expected '}'"),
        ("$CONFIG{A} = [1,\n2,\n", 1, "unclosed '['"),
        ("$CONFIG{A} = (1 + \n", 2, "unexpected end of file"),
        ("$CONFIG{A} = 1 / 0;", 1, "Illegal division by zero"),
        ("\n$CONFIG{A} = 1 % 0;", 2, "Illegal modulus zero"),
        (
            "$CONFIG{A} = 'a' - [];",
            1,
            "arithmetic on an array reference",
        ),
        ("$CONFIG{A} = 08;", 1, "illegal octal digit '8'"),
        ("$x = 1;", 1, "unknown variable $x"),
        ("$CONFIG{A} = nobody;", 1, "bareword 'nobody'"),
        (
            "$CONFIG{A} = dirname '/x';",
            1,
            "'dirname' without parentheses",
        ),
        (
            "$CONFIG{A} = dirname('/x', '/y');",
            1,
            "dirname() got 2 arguments",
        ),
        ("%CONFIG = (A => 1, 'B');", 1, "odd number of elements"),
        (
            "%CONFIG = (A => 1 B => 2);",
            1,
            "expected ',' or ')' in list, found 'B'",
        ),
        ("$CONFIG{A} ||= 1;", 1, "unsupported construct: '||='"),
        (
            "$CONFIG{A}[0] = 1;",
            1,
            "expected '=' after $CONFIG{A}, found '['",
        ),
        ("$CONFIG{A} = $ENV{HOME};", 1, "hash element '$ENV{...}'"),
        ("$CONFIG{A} = {a => 1};", 1, "hash reference"),
        ("$CONFIG{A} = @list;", 1, "array '@list'"),
        (
            "$CONFIG{A} = \"a@b.c\";",
            1,
            "unsupported interpolation '@b'",
        ),
        (
            "$CONFIG{A} = \"x$>y\";",
            1,
            "unsupported interpolation '$>'",
        ),
        (
            "$CONFIG{A} = \"5$ x\";",
            1,
            "unsupported interpolation '$ '",
        ),
        ("$CONFIG{A} = \"5$\";", 1, "final $"),
        (
            "$CONFIG{A} = \"x@1y\";",
            1,
            "unsupported interpolation '@1y'",
        ),
        ("$CONFIG{A} = \"x@-y\";", 1, "unsupported interpolation '@'"),
        (
            "$CONFIG{A} = \"$x[0]\";",
            1,
            "unknown variable $x in string",
        ),
        ("my $x = 1;\n$CONFIG{A} = \"$x[0]\";", 2, "element access"),
        (
            "$CONFIG{A} = \"\\u$CONFIG{B}\";",
            1,
            "unsupported escape '\\u'",
        ),
        ("$CONFIG{A} = <<EOF;\nx\nEOF\n", 1, "here-document"),
        ("$CONFIG{A} = `ls`;", 1, "command"),
        ("$CONFIG{A} = 1 if 1;", 1, "found 'if'"),
        ("return 1 if $x;", 1, "found 'if'"),
        ("require 'other.pl';", 1, "'require' of a file"),
        ("my %CONFIG = ();", 1, "would hide"),
        ("$CONFIG{A} = sub ;", 1, "'sub' without a block"),
        ("$CONFIG{A} = sub { 1;\n", 1, "unterminated 'sub' body"),
        ("$CONFIG{A} = 1;\n\n  \u{fffd};", 3, "unexpected character"),
        ("$CONFIG{A} = 'x' x 1e12;", 1, "string repetition longer"),
        // Found by the config fuzzer's memory growth: a list of big strings repeated
        // (1M copies of a 60 MB string) is refused before anything is copied, and the
        // values of a whole file are bounded together.
        (
            "$CONFIG{A} = ('x' x 1000) x 100000;",
            1,
            "list repetition longer than 67108864 bytes",
        ),
        (
            "$CONFIG{A} = 'x' x 5e7;\n$CONFIG{B} = 'x' x 5e7;\n$CONFIG{C} = 'y' x 5e7;",
            3,
            "exceed 134217728 bytes in all",
        ),
    ];
    for (text, line, message) in table {
        let e = error_of(text);
        assert_eq!(e.line, *line, "line for {text:?}: {e}");
        assert!(e.message.contains(message), "message for {text:?}: {e}");
        assert_eq!(e.file, FILE);
    }
}

#[test]
fn fixture_that_writes_a_file_is_rejected_loudly() {
    let text = "use File::Basename;\nuse Cwd 'abs_path';\n\nmy $tmp = \"/tmp/large.$>.tmp\";\nopen(F, '>', $tmp);\n$CONFIG{IFRAME_FILE} = $tmp;\n\nreturn 1;\n";
    let e = error_of(text);
    assert_eq!(e.line, 4);
    assert!(e.message.contains("'$>'"), "{e}");
    let e = error_of("open(F, '>', '/tmp/x');\n$CONFIG{A} = 1;");
    assert_eq!(
        (e.line, e.message.as_str()),
        (1, "unsupported construct: 'open(...)'")
    );
}

#[test]
fn error_display_format() {
    let e = PerlError {
        file: "/x/y.conf".into(),
        line: 7,
        message: "syntax error: boom".into(),
    };
    assert_eq!(e.to_string(), "/x/y.conf:7: syntax error: boom");
    let boxed: Box<dyn std::error::Error> = Box::new(e);
    assert!(boxed.to_string().starts_with("/x/y.conf:7:"));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = [
        format!("$CONFIG{{A}} = {};", "[".repeat(10_000)),
        format!("$CONFIG{{A}} = {};", "(".repeat(10_000)),
        format!("$CONFIG{{A}} = {};", "[(".repeat(5_000)),
        format!("$CONFIG{{A}} = {}1;", "- ".repeat(10_000)),
        format!("$CONFIG{{A}} = 2{};", " ** 2".repeat(10_000)),
        format!(
            "$CONFIG{{A}} = {}1{};",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
        format!("%CONFIG = {};", "(".repeat(10_000)),
        format!(
            "$CONFIG{{A}} = {}'x'{};",
            "$CONFIG{".repeat(10_000),
            "}".repeat(10_000)
        ),
    ];
    for text in &deep {
        let e = error_of(text);
        assert_eq!(e.line, 1);
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
    }
    // Nesting within the limit is fine.
    let c = ok(&format!(
        "$CONFIG{{A}} = {}1{};",
        "[".repeat(40),
        "]".repeat(40)
    ));
    assert!(matches!(c["A"], Value::List(_)));
}
