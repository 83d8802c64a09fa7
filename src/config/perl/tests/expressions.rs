//! Expressions and strings: operators, terms, lists, interpolation and escapes.

use super::*;

#[test]
fn expressions() {
    let table: &[(&str, Value)] = &[
        ("1024 * 5", Value::Int(5120)),
        ("1_000", Value::Int(1000)),
        ("0x1F", Value::Int(31)),
        ("017", Value::Int(15)),
        ("0b101", Value::Int(5)),
        ("0.01", Value::Num(0.01)),
        ("1e3", Value::Num(1000.0)),
        (".5", Value::Num(0.5)),
        ("1.", Value::Num(1.0)),
        ("1 + 2 * 3", Value::Int(7)),
        ("(1 + 2) * 3", Value::Int(9)),
        ("10 - 2 - 3", Value::Int(5)),
        ("10 / 5", Value::Int(2)),
        ("10 / 4", Value::Num(2.5)),
        ("7 % -3", Value::Int(-2)),
        ("-7 % 3", Value::Int(2)),
        ("7.5 % 2", Value::Int(1)),
        ("2 ** 10", Value::Int(1024)),
        ("-2 ** 2", Value::Int(-4)),
        ("2 ** -1", Value::Num(0.5)),
        ("2 ** 3 ** 2", Value::Int(512)),
        ("2 * 3 ** 2", Value::Int(18)),
        ("- -3", Value::Int(3)),
        (
            "9223372036854775807 + 1",
            Value::Num(9_223_372_036_854_775_808.0),
        ),
        ("99999999999999999999", Value::Num(1e20)),
        ("'12abc' + 1", Value::Int(13)),
        ("'1.5' * 2", Value::Num(3.0)),
        ("undef + 1", Value::Int(1)),
        ("'a' . 'b' . 1 + 2", Value::Int(2)),
        ("__LINE__ x 2", s("11")),
        ("5 %3", Value::Int(2)),
        ("'v' . 1 * 2", s("v2")),
        ("'ab' x 3", s("ababab")),
        ("'-' x3", s("---")),
        ("'ab' x -1", s("")),
        ("'a' x 2 . 'b'", s("aab")),
        (
            "\"x\" x (1024 * 1024) . 'E'",
            Value::Str(format!("{}E", "x".repeat(1 << 20))),
        ),
        ("-'foo'", s("-foo")),
        ("-'-foo'", s("+foo")),
        ("-'5'", Value::Int(-5)),
        ("undef", Value::Undef),
        ("(1, 2, 3)", Value::Int(3)),
        ("(1, 2) x 2 * 3", Value::Int(66)),
        ("('a') x 2 . 'b'", s("aab")),
        ("qw(a b) x 2", s("bb")),
        ("()", Value::Undef),
        (
            "[1, [2, 3], ]",
            Value::List(vec![
                Value::Int(1),
                Value::List(vec![Value::Int(2), Value::Int(3)]),
            ]),
        ),
        (
            "[ (1, 2), (3) ]",
            Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
        ),
        (
            "[ ('a') x 2, ('b', 'c') x 2 ]",
            list(&["a", "a", "b", "c", "b", "c"]),
        ),
        ("[ a => 1 ]", Value::List(vec![s("a"), Value::Int(1)])),
        (
            "[ q => 1, x => 2 ]",
            Value::List(vec![s("q"), Value::Int(1), s("x"), Value::Int(2)]),
        ),
        ("[1, 2]->[1]", Value::Int(2)),
        ("__FILE__", s(FILE)),
        ("__LINE__", Value::Int(1)),
        ("dirname('/a/b/c')", s("/a/b")),
        ("basename('/x/y.conf', '.conf')", s("y")),
        ("abs_path('/a/./b//../c')", s("/a/c")),
    ];
    for (expr, expected) in table {
        assert_eq!(value_of(expr).as_ref(), Ok(expected), "{expr}");
    }
}

#[test]
fn strings_and_interpolation() {
    let table: &[(&str, &str)] = &[
        (r"'it\'s \\ \n'", "it's \\ \\n"),
        (r#""a\tb\n\\\"\$\@\0""#, "a\tb\n\\\"$@\0"),
        (r#""\x41\x{263A}\101\e""#, "A\u{263A}A\x1b"),
        (r#""cost: 5\$ \/ \. @ a@""#, "cost: 5$ / . @ a@"),
        (r#""user\@example.com""#, "user@example.com"),
        ("q(a (nested) b)", "a (nested) b"),
        ("q{x\\}y}", "x}y"),
        ("q!a!", "a"),
        ("qq{<$CONFIG{W}>}", "<7>"),
        ("qq <${name}_1>", "/srv_1"),
        (
            r#""$name/$CONFIG{W}/$CONFIG{'W'}/$CONFIG{$key}/$name-x""#,
            "/srv/7/7/7//srv-x",
        ),
        ("\"multi\nline\"", "multi\nline"),
        ("\"$CONFIG{MISSING}|\"", "|"),
        ("\"$CONFIG{L}\"", "a b"),
    ];
    let prelude = "$CONFIG{W} = 7; $CONFIG{L} = ['a', 'b']; my $name = '/srv'; my $key = 'W';\n";
    for (expr, expected) in table {
        let c = eval(&format!("{prelude}$CONFIG{{V}} = {expr};"));
        assert_eq!(
            c.map(|c| c.get("V").cloned()),
            Ok(Some(s(expected))),
            "{expr}"
        );
    }
}
