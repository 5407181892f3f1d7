//! `config/mtfu.toml` documents every key: with every `#key = value` line uncommented it must
//! still load (a renamed or removed key fails here, since unknown keys are refused).

#[test]
fn the_example_config_loads_with_every_setting_uncommented() {
    let text = include_str!("../config/mtfu.toml");
    let uncommented: String = text
        .lines()
        .map(|l| {
            let is_setting = l.starts_with('#')
                && l[1..].split(" = ").next().is_some_and(|k| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                });
            if is_setting { &l[1..] } else { l }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        uncommented.contains("\nlisten = "),
        "settings were uncommented"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mtfu.toml");
    std::fs::write(&path, uncommented).expect("write");
    let cfg = mtfu::config::Config::load(Some(&path)).expect("every documented key is real");
    assert_eq!(cfg.limits.max_file_size, 10_485_760);
    assert_eq!(cfg.server.plain_listen.as_deref(), Some("127.0.0.1:8080"));
}
