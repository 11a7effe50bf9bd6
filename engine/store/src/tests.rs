use std::path::PathBuf;

use arrow::compute::concat_batches;

use super::*;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/forgotten")
}

/// Every canonical table of the fixture into a new snapshot of `store`.
fn import(store: &Store) -> Snapshot {
    let mut w = store.begin("csv import").unwrap();
    for t in svodka_schema::TABLES {
        let loaded = svodka_csv::read_table(&fixture(), t.name).unwrap();
        w.table(t.name, loaded.schema, &loaded.batches).unwrap();
    }
    let info = DatasetInfo::read(&fixture()).unwrap();
    w.commit(info.as_ref(), 3).unwrap()
}

#[test]
fn tables_come_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let snap = import(&store);
    assert_eq!(snap.name, "000001");
    assert!(Store::is_store(dir.path()));
    for t in svodka_schema::TABLES {
        let csv = svodka_csv::read_table(&fixture(), t.name).unwrap();
        let (schema, batches) = store.current().unwrap().read(t.name).unwrap();
        assert_eq!(schema, csv.schema, "{}", t.name);
        let a = concat_batches(&schema, &batches).unwrap();
        // Tables with derived columns are stored sorted by the next change; `read` gives
        // them back without those columns.
        let (derived, sorted) = svodka_schema::derive(t.name, csv.schema, csv.batches).unwrap();
        let b = concat_batches(&derived, &sorted)
            .unwrap()
            .project(&svodka_schema::derived::delivered_columns(t.name, &derived))
            .unwrap();
        assert_eq!(a, b, "{}", t.name);
    }
    // The scan sees the derived columns as stored.
    let scanned = store
        .current()
        .unwrap()
        .scan("stage_history")
        .unwrap()
        .unwrap();
    assert!(svodka_schema::has_derived(
        "stage_history",
        &scanned.schema()
    ));
    // Text is scanned as views, except free text, which a view would keep whole pages of.
    let deals = store.current().unwrap().scan("deals").unwrap().unwrap();
    let type_of = |c: &str| {
        deals
            .schema()
            .field_with_name(c)
            .unwrap()
            .data_type()
            .clone()
    };
    assert_eq!(type_of("stage_id"), arrow::datatypes::DataType::Utf8View);
    assert_eq!(type_of("utm_source"), arrow::datatypes::DataType::Utf8View);
    assert_eq!(type_of("title"), arrow::datatypes::DataType::Utf8);
    assert_eq!(type_of("id"), arrow::datatypes::DataType::Int64);
    let deals = snap
        .manifest
        .tables
        .iter()
        .find(|(n, _)| n == "deals")
        .unwrap();
    assert_eq!(deals.1, 9);
    assert_eq!(
        snap.info.unwrap().name,
        DatasetInfo::read(&fixture()).unwrap().unwrap().name
    );
}

#[test]
fn a_sync_that_dies_leaves_the_current_snapshot_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    import(&store);
    {
        // Half a snapshot, then the writer is gone without a commit (a killed sync).
        let mut w = store.begin("bitrix24 sync").unwrap();
        let users = svodka_csv::read_table(&fixture(), "users").unwrap();
        w.table("users", users.schema, &users.batches).unwrap();
    }
    let current = store.current().unwrap();
    assert_eq!(current.name, "000001");
    assert_eq!(current.manifest.origin, "csv import");
    assert_eq!(
        current
            .read("deals")
            .unwrap()
            .1
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        9
    );
    // The next sync clears the leftovers and completes.
    let snap = import(&store);
    assert_eq!(snap.name, "000002");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(left.iter().all(|n| !n.ends_with(".partial")), "{left:?}");
}

/// The codec of the first column chunk of the Parquet file at `path`.
fn codec(path: &Path) -> Compression {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    reader.metadata().row_group(0).column(0).compression()
}

#[test]
fn snapshots_written_with_zstd_before_read_as_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    import(&store);
    let snap = store.current().unwrap();
    let path = snap.table_path("deals");
    assert_eq!(codec(&path), Compression::LZ4_RAW);
    let (schema, before) = snap.read("deals").unwrap();
    // The same file as a snapshot written before LZ4 holds it: every chunk in zstd.
    let file = std::fs::File::open(&path).unwrap();
    let rows: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let zstd = Compression::ZSTD(datafusion::parquet::basic::ZstdLevel::try_new(1).unwrap());
    let props = WriterProperties::builder().set_compression(zstd).build();
    let rewritten = path.with_extension("zstd");
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&rewritten).unwrap(),
        rows[0].schema(),
        Some(props),
    )
    .unwrap();
    for b in &rows {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
    std::fs::rename(&rewritten, &path).unwrap();
    assert_eq!(codec(&path), zstd);
    let (schema_after, after) = store.current().unwrap().read("deals").unwrap();
    assert_eq!(schema_after, schema);
    assert_eq!(
        concat_batches(&schema, &after).unwrap(),
        concat_batches(&schema, &before).unwrap()
    );
    assert!(before.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
}

#[test]
fn old_snapshots_beyond_keep_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    for _ in 0..5 {
        import(&store);
    }
    assert_eq!(store.snapshots().unwrap(), ["000003", "000004", "000005"]);
    assert_eq!(store.current().unwrap().name, "000005");
}

#[test]
fn a_table_of_the_wrong_shape_never_reaches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let mut w = store.begin("test").unwrap();
    let users = svodka_csv::read_table(&fixture(), "users").unwrap();
    let err = w.table("deals", users.schema, &users.batches).unwrap_err();
    assert!(err.to_string().starts_with("table `deals`:"), "{err}");
}

#[test]
fn bookkeeping_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    assert!(
        store
            .current()
            .unwrap_err()
            .to_string()
            .contains("no snapshot yet")
    );
    std::fs::write(dir.path().join(CURRENT), "../../etc\n").unwrap();
    let err = store.current().unwrap_err().to_string();
    assert!(
        err.contains("CURRENT") && err.contains("expected a snapshot number"),
        "{err}"
    );
}

#[test]
fn a_table_whose_rows_repeat_a_key_is_refused_and_the_snapshot_is_not_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    import(&store);
    let mut w = store.begin("plugin sync").unwrap();
    let users = svodka_csv::read_table(&fixture(), "users").unwrap();
    // Every user delivered twice, as a sync that read a page twice would.
    let twice: Vec<_> = users
        .batches
        .iter()
        .chain(&users.batches)
        .cloned()
        .collect();
    let err = w
        .table("users", users.schema, &twice)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("table `users`: rows 1 and ") && err.contains("have the same key (id) = 1"),
        "{err}"
    );
    drop(w);
    assert_eq!(store.current().unwrap().name, "000001");
}

#[test]
fn a_first_sync_that_fails_leaves_no_store_folder_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::new(&path);
    {
        let mut w = store.begin("bitrix24 sync").unwrap();
        let users = svodka_csv::read_table(&fixture(), "users").unwrap();
        w.table("users", users.schema, &users.batches).unwrap();
        // The sync fails here: the writer is dropped without a commit.
    }
    assert!(!path.exists(), "an empty store was left behind");
    assert!(!Store::is_store(&path));
    // A store that existed keeps its folder and its snapshot; only the partial one goes.
    import(&store);
    {
        let _w = store.begin("bitrix24 sync").unwrap();
    }
    assert_eq!(store.snapshots().unwrap(), ["000001"]);
    let names: Vec<_> = std::fs::read_dir(path.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["000001"]);
}

/// A table bigger than one part goes up in parts that the store puts back together byte
/// for byte; a small file in one request.
#[test]
fn a_big_file_is_uploaded_in_parts_and_comes_back_whole() {
    let s3 = svodka_emulator_s3::S3::start("key", "secret").unwrap();
    s3.create_bucket("b");
    let client = bucket::client(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("b")
            .with_endpoint(&s3.endpoint)
            .with_allow_http(true)
            .with_region(svodka_emulator_s3::REGION)
            .with_access_key_id("key")
            .with_secret_access_key("secret"),
    )
    .unwrap();
    let bucket = Bucket::with_client("s3://b/store", client);
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..(40 << 20) + 123u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join("big"), &big).unwrap();
    std::fs::write(dir.path().join("small"), b"000001\n").unwrap();
    let sent = bucket
        .upload(&dir.path().join("big"), &bucket.join("t/big.parquet"))
        .unwrap();
    assert_eq!(sent, big.len() as u64);
    bucket
        .upload(&dir.path().join("small"), &bucket.join("CURRENT"))
        .unwrap();
    assert_eq!(s3.object("b", "store/t/big.parquet").unwrap(), big);
    assert_eq!(s3.object("b", "store/CURRENT").unwrap(), b"000001\n");
    let log = s3.log();
    let parts = log.iter().filter(|r| r.contains("partNumber=")).count();
    assert_eq!(parts, 3, "{log:?}");
    assert_eq!(s3.open_uploads(), 0);
    assert_eq!(
        bucket
            .get(&bucket.join("t/big.parquet"))
            .unwrap()
            .unwrap()
            .len(),
        big.len()
    );
    assert!(bucket.get(&bucket.join("absent")).unwrap().is_none());
    assert_eq!(
        bucket.folders(&bucket.join("")).unwrap(),
        vec!["t".to_string()]
    );
}
