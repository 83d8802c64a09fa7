//! Values: Perl's stringification, numification and truth.

use super::*;

#[test]
fn perl_stringification() {
    let table: &[(Value, &str)] = &[
        (Value::Num(0.01), "0.01"),
        (Value::Num(5120.0), "5120"),
        (Value::Num(1e21), "1e+21"),
        (Value::Num(0.5), "0.5"),
        (Value::Num(1e15), "1e+15"),
        (Value::Num(123_456_789_012_345.0), "123456789012345"),
        (Value::Num(0.1 + 0.2), "0.3"),
        (Value::Num(1.0 / 3.0), "0.333333333333333"),
        (Value::Num(1e-5), "1e-05"),
        (Value::Num(0.0001), "0.0001"),
        (Value::Num(2f64.sqrt()), "1.4142135623731"),
        (Value::Num(-2.5), "-2.5"),
        (Value::Num(1e100), "1e+100"),
        (
            Value::Num(1.215_766_545_905_692_9e19),
            "1.21576654590569e+19",
        ),
        (Value::Num(f64::INFINITY), "Inf"),
        (Value::Num(f64::NAN), "NaN"),
        (Value::Num(0.0), "0"),
        (Value::Num(-0.0), "0"),
        (Value::Int(0), "0"),
        (Value::Int(-42), "-42"),
        (Value::Int(i64::MAX), "9223372036854775807"),
        (Value::Undef, ""),
        (s("text"), "text"),
        (
            Value::List(vec![
                s("a"),
                Value::Int(1),
                Value::Num(0.5),
                Value::List(vec![s("b")]),
            ]),
            "a 1 0.5 b",
        ),
        (Value::Code("sub {}".into()), "CODE"),
    ];
    for (value, expected) in table {
        assert_eq!(value.to_perl_string(), *expected, "{value:?}");
    }
}

#[test]
fn numeric_coercion_and_truth() {
    let table: &[(Value, f64, bool)] = &[
        (s("12abc"), 12.0, true),
        (s(""), 0.0, false),
        (s("0"), 0.0, false),
        (s("0.0"), 0.0, true),
        (s("00"), 0.0, true),
        (s(" 1.5e3x"), 1500.0, true),
        (s("-.5"), -0.5, true),
        (s("0x1F"), 0.0, true),
        (s("abc"), 0.0, true),
        (Value::Undef, 0.0, false),
        (Value::Int(0), 0.0, false),
        (Value::Int(7), 7.0, true),
        (Value::Num(0.0), 0.0, false),
        (Value::Num(0.25), 0.25, true),
        (list(&["a", "b"]), 2.0, true),
        (Value::List(vec![]), 0.0, true),
        (Value::Code(String::new()), 0.0, true),
    ];
    for (value, number, truth) in table {
        assert_eq!(value.to_f64(), *number, "{value:?}");
        assert_eq!(value.is_true(), *truth, "{value:?}");
    }
    assert!(s("inf").to_f64().is_infinite());
}
