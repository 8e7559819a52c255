//! Exit codes: 1 for what the user can fix, 2 for failures at run time.

use crate::common::*;

#[test]
fn an_output_path_that_is_a_file_is_a_user_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("out");
    std::fs::write(&file, b"not a folder").unwrap();
    let args = stage_args("shuffle", &fixture(), &file, &[]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1);
    assert!(err.contains("cannot create output folder"), "{err}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"not a folder",
        "the file is left alone"
    );
}
