//! Moving mounts (`sys/remount`, `coffer secrets move`, `coffer auth move`)
//! and the `coffer secrets` commands, against real servers; the move is
//! checked across a `kill -9` and restart on SQLite storage.

mod cli_support;

use cli_support::{start_initialised, unique, Api, Server};
use serde_json::json;

#[test]
fn secrets_commands_enable_tune_list_move_and_disable() {
    let dir = tempfile::tempdir().unwrap();
    let (s, cfg, keys) = start_initialised(dir.path(), 1, 1);
    let api = Api::new(&s);
    // A production server starts with no secret/ mount: the CLI makes one.
    s.run(&[
        "secrets",
        "enable",
        "-path=app",
        "-version=2",
        "-description=app secrets",
        "kv",
    ])
    .ok();
    s.run(&["secrets", "enable", "-path=plain", "kv"]).ok();
    let value = unique("pw");
    api.root("POST", "app/data/db", Some(json!({"data": {"pw": value}})));
    api.root(
        "POST",
        "app/data/db",
        Some(json!({"data": {"pw": format!("{value}-2")}})),
    );
    api.root("POST", "app/lifecycle/db", Some(json!({"owner": "team-a"})));
    api.root("POST", "app/config", Some(json!({"max_versions": 7})));
    api.root(
        "PUT",
        "sys/policies/acl/app-reader",
        Some(json!({"policy": "path \"app/data/*\" { capabilities = [\"read\"] }"})),
    );
    s.run(&[
        "secrets",
        "tune",
        "-max-lease-ttl=2h",
        "-description=tuned",
        "app/",
    ])
    .ok();
    s.run(&["secrets", "tune", "app"]).code(1);
    let before = s.run(&["secrets", "list", "-format=json"]).ok().json();
    assert_eq!(before["app/"]["options"]["version"], "2");
    // As OpenBao: a mount an operator created shows empty options as {}.
    assert_eq!(before["plain/"]["options"], json!({}));
    let table = s.run(&["secrets", "list"]).ok();
    assert!(
        table.stdout.contains("app/") && table.stdout.contains("tuned"),
        "{table:#?}"
    );

    let moved = s.run(&["secrets", "move", "app/", "apps/team-a"]).ok();
    assert!(
        moved
            .stdout
            .contains("Success! Finished moving secrets engine app/ to apps/team-a/"),
        "{moved:#?}"
    );
    let after = s.run(&["secrets", "list", "-format=json"]).ok().json();
    assert!(after.get("app/").is_none(), "{after}");
    let m = &after["apps/team-a/"];
    assert_eq!(m["uuid"], before["app/"]["uuid"], "same storage");
    assert_eq!(m["accessor"], before["app/"]["accessor"]);
    assert_eq!(m["config"]["max_lease_ttl"], 7200);
    let (st, _) = api.call("GET", "app/data/db", Some(&s.token), None);
    assert_eq!(st, 404, "nothing answers at the old path");

    // Restart after kill -9: the move is durable, data and history intact.
    let (token, addr) = (s.token.clone(), s.addr.clone());
    drop(api);
    drop(s);
    let mut s = Server::start_config(&cfg, addr);
    s.token = token;
    let api = Api::new(&s);
    api.call("PUT", "sys/unseal", None, Some(json!({"key": keys[0]})));
    let read = api.root("GET", "apps/team-a/data/db?version=1", None);
    assert_eq!(read["data"]["data"]["pw"], value.as_str());
    let meta = api.root("GET", "apps/team-a/metadata/db", None);
    assert_eq!(meta["data"]["current_version"], 2);
    assert_eq!(
        api.root("GET", "apps/team-a/config", None)["data"]["max_versions"],
        7
    );
    assert_eq!(
        api.root("GET", "apps/team-a/lifecycle/db", None)["data"]["owner"],
        "team-a"
    );
    // Policies are not rewritten.
    let pol = api.root("GET", "sys/policies/acl/app-reader", None);
    assert!(pol["data"]["policy"]
        .as_str()
        .unwrap()
        .contains("app/data/*"));

    s.run(&["secrets", "disable", "apps/team-a"]).ok();
    let (st, _) = api.call("GET", "apps/team-a/data/db", Some(&s.token), None);
    assert_eq!(st, 404);
}

#[test]
fn auth_move_keeps_users_and_revokes_the_methods_tokens() {
    let s = Server::start();
    let api = Api::new(&s);
    s.run(&["auth", "enable", "userpass"]).ok();
    let pw = unique("pw");
    api.root(
        "POST",
        "auth/userpass/users/alice",
        Some(json!({"password": pw, "token_policies": ["default"]})),
    );
    let login = api.root(
        "POST",
        "auth/userpass/login/alice",
        Some(json!({"password": pw})),
    );
    let old = login["auth"]["client_token"].as_str().unwrap().to_owned();
    let (st, _) = api.call("GET", "auth/token/lookup-self", Some(&old), None);
    assert_eq!(st, 200);

    let moved = s.run(&["auth", "move", "userpass", "people/"]).ok();
    assert!(
        moved
            .stdout
            .contains("Finished moving auth method userpass/ to people/"),
        "{moved:#?}"
    );
    let (st, _) = api.call("GET", "auth/token/lookup-self", Some(&old), None);
    assert_eq!(
        st, 403,
        "a token issued through the moved method is revoked"
    );
    let again = api.root(
        "POST",
        "auth/people/login/alice",
        Some(json!({"password": pw})),
    );
    let new = again["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        api.call("GET", "auth/token/lookup-self", Some(new), None).0,
        200
    );
    let (st, _) = api.call(
        "POST",
        "auth/userpass/login/alice",
        None,
        Some(json!({"password": pw})),
    );
    assert_ne!(st, 200, "no login at the old path");
    let list = s.run(&["auth", "list", "-format=json"]).ok().json();
    assert!(
        list.get("people/").is_some() && list.get("userpass/").is_none(),
        "{list}"
    );
}

#[test]
fn remount_refuses_what_vault_refuses() {
    let s = Server::start();
    let api = Api::new(&s);
    api.root("POST", "sys/mounts/kv", Some(json!({"type": "kv-v2"})));
    api.root("POST", "sys/auth/up", Some(json!({"type": "userpass"})));
    let cases = [
        (json!({"from": "sys", "to": "x"}), "cannot remount \"sys/\""),
        (json!({"from": "cubbyhole", "to": "x"}), "cannot remount"),
        (json!({"from": "identity", "to": "x"}), "cannot remount"),
        (
            json!({"from": "auth/token", "to": "auth/t2"}),
            "cannot remount \"auth/token/\"",
        ),
        (
            json!({"from": "kv", "to": "secret"}),
            "path already in use at \"secret/\"",
        ),
        (
            json!({"from": "kv", "to": "kv/sub"}),
            "path already in use at \"kv/\"",
        ),
        (
            json!({"from": "kv", "to": "secret/sub"}),
            "path already in use at \"secret/\"",
        ),
        (
            json!({"from": "kv", "to": "auth/x"}),
            "cannot remount to destination auth/x/",
        ),
        (
            json!({"from": "kv", "to": "sys/x"}),
            "cannot remount to destination sys/x/",
        ),
        (
            json!({"from": "auth/up", "to": "up3"}),
            "cannot remount auth mount to non-auth mount \"up3/\"",
        ),
        (
            json!({"from": "auth/up", "to": "auth/token/x"}),
            "cannot remount to destination",
        ),
        (
            json!({"from": "nope", "to": "x"}),
            "no matching mount at \"nope/\"",
        ),
        (
            json!({"from": "kv"}),
            "both 'from' and 'to' path must be specified as a string",
        ),
        (
            json!({"from": "kv", "to": 7}),
            "both 'from' and 'to' path must be specified as a string",
        ),
        (json!({"from": "kv", "to": "a/../b"}), "invalid mount path"),
    ];
    for (body, want) in cases {
        let (st, v) = api.call("POST", "sys/remount", Some(&s.token), Some(body.clone()));
        assert_eq!(st, 400, "{body}: {v}");
        let msg = v["errors"][0].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{body}: {msg:?} lacks {want:?}");
    }
    // Nothing moved.
    api.root("GET", "sys/mounts/kv/tune", None);
    // sudo is needed, as in Vault.
    api.root(
        "PUT",
        "sys/policies/acl/mover",
        Some(json!({"policy": "path \"sys/remount\" { capabilities = [\"update\"] }"})),
    );
    let t = api.root(
        "POST",
        "auth/token/create",
        Some(json!({"policies": ["mover"]})),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, _) = api.call(
        "POST",
        "sys/remount",
        Some(&t),
        Some(json!({"from": "kv", "to": "kv2"})),
    );
    assert_eq!(st, 403);
    // A move's status; an unknown id is a 404.
    let moved = api.root(
        "POST",
        "sys/remount",
        Some(json!({"from": "kv", "to": "kv2"})),
    );
    let id = moved["data"]["migration_id"].as_str().unwrap();
    assert_eq!(moved["migration_id"], id);
    let st = api.root("GET", &format!("sys/remount/status/{id}"), None);
    assert_eq!(st["data"]["migration_info"]["status"], "success");
    assert_eq!(st["data"]["migration_info"]["source_mount"], "kv/");
    assert_eq!(st["data"]["migration_info"]["target_mount"], "kv2/");
    let (code, v) = api.call("GET", "sys/remount/status/unknown", Some(&s.token), None);
    assert_eq!((code, v), (404, json!({"errors": []})));
    // 32 concurrent moves of the same mount: one wins, the others find it gone or taken.
    let results: Vec<u16> = std::thread::scope(|scope| {
        let hs: Vec<_> = (0..32)
            .map(|i| {
                let api = &api;
                let token = s.token.clone();
                scope.spawn(move || {
                    api.call(
                        "POST",
                        "sys/remount",
                        Some(&token),
                        Some(json!({"from": "kv2", "to": format!("kv-{i}")})),
                    )
                    .0
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|c| **c == 200).count(),
        1,
        "{results:?}"
    );
    assert!(
        results.iter().all(|c| *c == 200 || *c == 400),
        "{results:?}"
    );
    let mounts = api.root("GET", "sys/mounts", None);
    let kvs = mounts["data"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("kv"))
        .count();
    assert_eq!(kvs, 1, "{mounts}");
}

#[test]
fn the_bao_cli_enables_tunes_lists_and_moves_mounts() {
    let Some(bin) = cli_support::bao() else {
        return;
    };
    let s = Server::start();
    let api = Api::new(&s);
    let b = || cli_support::bao_at(&bin, s.home.path(), &s.addr, &s.token);
    cli_support::Run::of(b().args(["secrets", "enable", "-path=app", "-version=2", "kv"])).ok();
    api.root("POST", "app/data/x", Some(json!({"data": {"k": "v"}})));
    cli_support::Run::of(b().args(["secrets", "tune", "-max-lease-ttl=2h", "app/"])).ok();
    let list = cli_support::Run::of(b().args(["secrets", "list", "-format=json"]))
        .ok()
        .json();
    assert_eq!(list["app/"]["options"]["version"], "2", "{list}");
    assert_eq!(list["app/"]["config"]["max_lease_ttl"], 7200, "{list}");
    let moved = cli_support::Run::of(b().args(["secrets", "move", "app/", "app2/"])).ok();
    assert!(
        moved
            .stdout
            .contains("Success! Finished moving secrets engine app/ to app2/"),
        "{moved:#?}"
    );
    assert_eq!(
        api.root("GET", "app2/data/x", None)["data"]["data"]["k"],
        "v"
    );
    cli_support::Run::of(b().args(["auth", "enable", "userpass"])).ok();
    // bao 2.7's `auth move` sends the paths without `auth/`, so OpenBao
    // itself answers "no matching mount"; Coffer answers the same.
    let moved = cli_support::Run::of(b().args(["auth", "move", "userpass/", "people/"]));
    assert_ne!(moved.code, 0);
    assert!(
        moved.stderr.contains("no matching mount at \"userpass/\""),
        "{moved:#?}"
    );
    let refused = cli_support::Run::of(b().args(["secrets", "move", "sys/", "x/"]));
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("cannot remount"), "{refused:#?}");
    cli_support::Run::of(b().args(["secrets", "disable", "app2/"])).ok();
}
