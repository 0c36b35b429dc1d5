//! `imageguard definitions`: the definitions found where the configuration says, each
//! destination resolved to the volume holding it (the sandbox's protected volume), remote ones
//! marked remote, an absent drive marked absent, a broken file reported with its line.

mod common;

use common::*;

#[test]
fn definitions_are_found_resolved_and_problems_reported() {
    let sb = protected(64);
    let etc = sb.path().join("etc");
    std::fs::create_dir_all(etc.join("borgmatic.d")).unwrap();
    std::fs::create_dir_all(sb.mnt.join("borg-repo")).unwrap();
    std::fs::write(
        etc.join("borgmatic.d/usb.yaml"),
        format!(
            "repositories:\n  - path: {}/borg-repo\n    label: usb\n  - path: ssh://backup@nas/./host\n",
            sb.mnt.display()
        ),
    )
    .unwrap();
    std::fs::write(
        etc.join("borgmatic.d/broken.yaml"),
        "repositories:\n  - [\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("rsnapshot.conf"),
        "snapshot_root\t/nonexistent/unplugged/\n",
    )
    .unwrap();
    std::fs::write(etc.join("passwd"), "").unwrap();
    let config = sb.path().join("imageguard.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[definitions]\nborgmatic = [\"{0}/borgmatic.d\"]\nrsnapshot = [\"{0}/rsnapshot.conf\"]\ntimeshift = []\nsystemd_units = []\npasswd = \"{0}/passwd\"\n",
        etc.display()
    ));
    std::fs::write(&config, text).unwrap();

    let out = sb.imageguard(&["definitions", "--json"]).unwrap();
    assert_ok("definitions --json", &out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dests = v["destinations"].as_array().unwrap();
    let find = |needle: &str| {
        dests
            .iter()
            .find(|d| d["destination"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {dests:?}"))
    };
    let usb = find("borg-repo");
    assert_eq!(usb["program"], "borgmatic");
    assert_eq!(usb["name"], "usb");
    assert_eq!(usb["location"], "local");
    assert_eq!(usb["present"], true);
    assert_eq!(usb["protected"], true);
    assert_eq!(usb["mount_point"], sb.mnt.to_string_lossy().as_ref());
    assert_eq!(find("ssh://")["location"], "remote");
    let unplugged = find("unplugged");
    assert_eq!(unplugged["program"], "rsnapshot");
    assert_eq!(unplugged["present"], false);
    assert_eq!(unplugged["protected"], false);
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0]["file"]
        .as_str()
        .unwrap()
        .ends_with("broken.yaml"));
    assert!(problems[0]["line"].as_u64().is_some());

    // The table for people, problems on stderr with file and line.
    let human = sb.imageguard(&["definitions"]).unwrap();
    assert_ok("definitions", &human);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("borgmatic") && text.contains("remote"),
        "{text}"
    );
    assert!(
        stderr(&human).contains("broken.yaml:"),
        "{}",
        stderr(&human)
    );
}
