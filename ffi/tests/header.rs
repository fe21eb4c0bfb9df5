//! The checked-in `include/nimsync.h` must be exactly what cbindgen generates
//! from the current sources. Run `make header` (or this test with
//! `NIMSYNC_UPDATE_HEADER=1`) to regenerate it after changing the C ABI.

use std::path::PathBuf;

#[test]
fn checked_in_header_is_current() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("read cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("header is UTF-8");

    let path = crate_dir.join("../include/nimsync.h");
    if std::env::var_os("NIMSYNC_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write include/nimsync.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/nimsync.h is stale: it differs from what cbindgen generates now. \
         Run `make header` and commit the result."
    );
}
