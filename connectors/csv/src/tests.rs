use super::*;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Decimal128Type, Int64Type, TimestampMicrosecondType};

fn read(table: &str, text: &str) -> Result<LoadedTable, CsvError> {
    let canonical = svodka_schema::table(table).unwrap();
    read_from(text.as_bytes(), Path::new("deals.csv"), canonical)
}

const DEAL_HEADER: &str =
    "id,title,pipeline_id,stage_id,semantic,amount,assigned_id,created_at,closed_at,modified_at";

#[test]
fn parses_types_offsets_money_and_nulls() {
    let text = format!(
        "{DEAL_HEADER},region\n\
         7,\"Поставка, 10 т\",1,NEW,process,19999.99,3,2024-03-05T12:34:56+03:00,,2024-03-05T09:34:56Z,north\n\
         8,Second,1,WON,success,,3,2024-03-01T00:00:00Z,2024-03-02T00:00:00.5+00:00,2024-03-02T00:00:00Z,\n"
    );
    let t = read("deals", &text).unwrap();
    assert_eq!(t.rows, 2);
    let b = &t.batches[0];
    assert_eq!(b.schema().fields().len(), 21, "20 canonical + 1 extra");
    let title = b.column_by_name("title").unwrap().as_string::<i32>();
    assert_eq!(title.value(0), "Поставка, 10 т");
    let amount = b
        .column_by_name("amount")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!(amount.value(0), 1_999_999);
    assert!(amount.is_null(1));
    let created = b
        .column_by_name("created_at")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    // 12:34:56+03:00 is 09:34:56 UTC.
    assert_eq!(created.value(0), 1_709_631_296_000_000);
    let closed = b
        .column_by_name("closed_at")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert!(closed.is_null(0));
    assert_eq!(closed.value(1) % 1_000_000, 500_000);
    let lead = b
        .column_by_name("lead_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(lead.null_count(), 2, "absent nullable column is all null");
    let region = b.column_by_name("region").unwrap().as_string::<i32>();
    assert_eq!(region.value(0), "north");
    assert!(region.is_null(1));
    svodka_schema::check_batch("deals", b).unwrap();
}

#[test]
fn bad_date_names_file_line_column_and_value() {
    let text = format!(
        "{DEAL_HEADER}\n\
         7,A,1,NEW,process,1.00,3,2024-03-05T12:34:56+03:00,,2024-03-05T09:34:56Z\n\
         8,B,1,NEW,process,1.00,3,05.03.2024,,2024-03-05T09:34:56Z\n"
    );
    let err = read("deals", &text).unwrap_err().to_string();
    assert_eq!(
        err,
        "deals.csv:3: column `created_at`: expected an ISO 8601 timestamp with an offset, \
         e.g. 2024-03-05T12:34:56+03:00: \"05.03.2024\""
    );
}

#[test]
fn timestamp_without_offset_is_refused() {
    let text =
        format!("{DEAL_HEADER}\n7,A,1,NEW,process,,3,2024-03-05T12:34:56,,2024-03-05T09:34:56Z\n");
    let err = read("deals", &text).unwrap_err();
    assert!(
        matches!(err, CsvError::BadValue { line: 2, ref column, .. } if column == "created_at")
    );
}

#[test]
fn money_with_three_decimals_is_refused() {
    let text = format!(
        "{DEAL_HEADER}\n7,A,1,NEW,process,1.005,3,2024-03-05T12:34:56Z,,2024-03-05T09:34:56Z\n"
    );
    let err = read("deals", &text).unwrap_err().to_string();
    assert!(
        err.contains("column `amount`: more than two decimal places: \"1.005\""),
        "{err}"
    );
}

#[test]
fn empty_required_value_is_refused() {
    let text =
        format!("{DEAL_HEADER}\n7,A,1,NEW,process,,,2024-03-05T12:34:56Z,,2024-03-05T09:34:56Z\n");
    let err = read("deals", &text).unwrap_err().to_string();
    assert!(
        err.contains("deals.csv:2: column `assigned_id`: empty value in a required column"),
        "{err}"
    );
}

#[test]
fn bad_id_and_bad_bool() {
    let err = read("users", "id,name,active\nx1,Ann,true\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":2: column `id`: expected a whole number: \"x1\""),
        "{err}"
    );
    let err = read("users", "id,name,active\n1,Ann,yes\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(":2: column `active`: expected true or false: \"yes\""),
        "{err}"
    );
}

#[test]
fn missing_required_header_column() {
    let err = read("users", "id,name\n1,Ann\n").unwrap_err().to_string();
    assert_eq!(
        err,
        "deals.csv:1: required column `active` of table `users` is missing from the header"
    );
}

#[test]
fn short_row_and_unterminated_quote_are_malformed() {
    let err = read("users", "id,name,active\n1,Ann\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "deals.csv:2: malformed CSV: expected 3 fields, found 2"
    );
    let err = read("users", "id,name,active\n1,\"Ann,true\n2,Bob,true\n").unwrap_err();
    assert!(matches!(err, CsvError::Malformed { .. }), "{err}");
}

#[test]
fn duplicate_header_is_refused() {
    let err = read("users", "id,name,active,name\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("column `name` appears twice"), "{err}");
}

#[test]
fn invalid_utf8_is_named() {
    let mut bytes = b"id,name,active\n1,".to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe]);
    bytes.extend_from_slice(b",true\n");
    let canonical = svodka_schema::table("users").unwrap();
    let err = read_from(&bytes[..], Path::new("users.csv"), canonical)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("users.csv:2: column `name`: not valid UTF-8"),
        "{err}"
    );
}

#[test]
fn header_only_file_is_an_empty_present_table() {
    let t = read("users", "id,name,active\n").unwrap();
    assert_eq!(t.rows, 0);
    assert!(t.present);
}

#[test]
fn absent_file_is_an_empty_absent_table() {
    let dir = tempfile::tempdir().unwrap();
    let t = read_table(dir.path(), "plans").unwrap();
    assert!(!t.present);
    assert_eq!(t.rows, 0);
}

#[test]
fn money_parser_edges() {
    assert_eq!(parse_money("0").unwrap(), 0);
    assert_eq!(parse_money("-12.3").unwrap(), -1230);
    assert_eq!(parse_money("12.300").unwrap(), 1230);
    assert_eq!(parse_money(".5").unwrap(), 50);
    assert!(parse_money("1e5").is_err());
    assert!(parse_money("1 000").is_err());
    assert!(parse_money(".").is_err());
    assert!(parse_money("12345678901234567").is_err());
    assert_eq!(
        parse_money("9999999999999999.99").unwrap(),
        999_999_999_999_999_999
    );
}

/// Only "nothing there" is an absent table; a folder that cannot be looked into (here a
/// file where the folder should be; on a server, a folder without permission) is an
/// error naming the path, never an empty table.
#[test]
fn an_unreadable_place_is_an_error_not_an_absent_table() {
    let dir = tempfile::tempdir().unwrap();
    let missing = read_table(dir.path(), "deals").unwrap();
    assert!(!missing.present);
    let not_a_folder = dir.path().join("data");
    std::fs::write(&not_a_folder, "").unwrap();
    let err = read_table(&not_a_folder, "deals").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}/deals.csv: ", not_a_folder.display())),
        "{err}"
    );
}

/// A deal listed twice would count twice (won deals, repeat share): refused with both
/// lines; ids compare as numbers, composite keys as their columns' text.
#[test]
fn a_row_that_repeats_a_key_is_refused_with_both_lines() {
    let row = |id: &str| {
        format!("{id},T,1,NEW,process,10,3,2024-03-05T12:34:56+03:00,,2024-03-05T09:34:56Z\n")
    };
    let text = format!("{DEAL_HEADER}\n{}{}{}", row("7"), row("8"), row("07"));
    let e = read("deals", &text).unwrap_err();
    assert!(
        matches!(&e, CsvError::DuplicateKey { line: 4, first: 2, value, .. } if value == "7"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "deals.csv:4: `id` 7 appears again (first at line 2): each row of table `deals` must appear once"
    );
    assert_eq!(
        read("deals", &format!("{DEAL_HEADER}\n{}{}", row("7"), row("8")))
            .unwrap()
            .rows,
        2
    );
    let stages = "entity,pipeline_id,stage_id,name,sort,semantic\n\
                  deal,1,NEW,Новая,10,process\n\
                  deal,2,NEW,Новая,10,process\n\
                  lead,,NEW,Новый,10,process\n\
                  lead,,NEW,Новый,10,process\n";
    let e = read("stages", stages).unwrap_err().to_string();
    assert!(
        e.contains(
            ":5: `entity, pipeline_id, stage_id` lead, , NEW appears again (first at line 4)"
        ),
        "{e}"
    );
    // Tables without a key take repeated rows as they come.
    let history = "entity,entity_id,stage_id,semantic,changed_at,kind\n\
                   deal,7,NEW,process,2024-03-05T12:00:00Z,moved\n\
                   deal,7,NEW,process,2024-03-05T12:00:00Z,moved\n";
    assert_eq!(read("stage_history", history).unwrap().rows, 2);
}

/// A bad cell of megabytes is named by its start and length, not echoed whole.
#[test]
fn a_huge_bad_value_is_shown_cut() {
    let huge = "9".repeat(3_000_000) + "x";
    let text = format!(
        "{DEAL_HEADER}\n7,T,1,NEW,process,{huge},3,2024-03-05T12:34:56+03:00,,2024-03-05T09:34:56Z\n"
    );
    let e = read("deals", &text).unwrap_err().to_string();
    assert!(e.len() < 400, "{} bytes", e.len());
    assert!(e.contains("deals.csv:2: column `amount`"), "{e}");
    assert!(e.contains("(3000001 characters)"), "{e}");
}
