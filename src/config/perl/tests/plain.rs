//! The plain `KEY = value` format.

use super::*;

#[test]
fn plain_key_value_format() {
    let text = "# plain settings\n\nWAIT_TIMEOUT = 60\n  CHARSET = \"windows-1251\"  # trailing comment\nJS_WAIT_RECONNECT_DELAY=0.5\nWAIT_ADDR = 0.0.0.0:80 1.2.3.4:80\nEMPTY =\nURI = \"/a=b\"\r\n";
    let c = eval_into(text, defaults()).unwrap_or_default();
    assert_eq!(c["WAIT_TIMEOUT"], Value::Int(60));
    assert_eq!(c["CHARSET"], s("windows-1251"));
    assert_eq!(c["JS_WAIT_RECONNECT_DELAY"], Value::Num(0.5));
    assert_eq!(c["WAIT_ADDR"], s("0.0.0.0:80 1.2.3.4:80"));
    assert_eq!(c["EMPTY"], s(""));
    assert_eq!(c["URI"], s("/a=b"));
    assert_eq!(c["VERBOSITY"], Value::Int(3), "untouched keys stay");
    // Empty and comment-only files change nothing.
    for text in ["", "\n\n", "# nothing\n  # here\n", "\u{feff}"] {
        assert_eq!(eval_into(text, defaults()), Ok(defaults()), "{text:?}");
    }
    // Perl that does not touch %CONFIG is still fine.
    assert_eq!(eval_into("use strict;\n1;\n", defaults()), Ok(defaults()));
    // Errors name the line.
    let e = eval("A = 1\nB = 2\nthis is wrong\nC = 3\n")
        .err()
        .unwrap_or_else(|| panic!("must fail"));
    assert_eq!((e.line, e.file.as_str()), (3, FILE));
    assert!(e.message.contains("KEY = value"), "{}", e.message);
    let e = eval("A = 1\nBAD KEY = 2\n")
        .err()
        .unwrap_or_else(|| panic!("must fail"));
    assert_eq!(e.line, 2);
}
