//! The paged answers of `GET /api/sms/batch/{id}` and `GET /api/api-keys`: page fields
//! beside the fields Vendel clients read, the per-page cap, and bad values.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sms::Caller;

fn page_fields(v: &Value) -> (Option<i64>, Option<i64>, Option<i64>, Option<i64>) {
    (
        v["page"].as_i64(),
        v["per_page"].as_i64(),
        v["total_items"].as_i64(),
        v["total_pages"].as_i64(),
    )
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_batch_is_paged_and_its_counts_cover_the_whole_batch() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "paged-batch@example.org").await;
    let recipients: Vec<String> = (1..=5).map(|i| format!("+1555010000{i}")).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let (status, sent) = c.send(&refs, "Paged").await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let batch = sent["batch_id"].as_str().unwrap().to_owned();
    // Two of the five failed, whatever page they are on.
    let all_ids: Vec<uuid::Uuid> = sent["message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().parse().unwrap())
        .collect();
    sqlx::query("UPDATE messages SET status = 'failed' WHERE id = ANY($1)")
        .bind(&all_ids[..2])
        .execute(app.pool())
        .await
        .unwrap();

    let mut seen = Vec::new();
    for (page, expect) in [(1, 2), (2, 2), (3, 1)] {
        let (status, res) = c
            .get(&format!("/api/sms/batch/{batch}?page={page}&per_page=2"))
            .await;
        assert_eq!(status, StatusCode::OK, "{res}");
        assert_eq!(page_fields(&res), (Some(page), Some(2), Some(5), Some(3)));
        assert_eq!(res["batch_id"], batch.as_str());
        assert_eq!(res["total"], 5, "the whole batch");
        assert_eq!(
            res["status_counts"],
            json!({"failed": 2, "pending": 3}),
            "the whole batch"
        );
        let messages = res["messages"].as_array().unwrap();
        assert_eq!(messages.len(), expect, "page {page}");
        for m in messages {
            for key in ["id", "recipient", "status", "error_message", "created", "updated"] {
                assert!(m[key].is_string(), "{key} in {m}");
            }
        }
        seen.extend(ids(&res["messages"]));
    }
    let mut newest_first: Vec<String> = all_ids.iter().map(ToString::to_string).collect();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every message once, newest first");

    // Past the end: the batch is still there, the page is empty.
    let (status, past) = c.get(&format!("/api/sms/batch/{batch}?page=4&per_page=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (past["messages"].as_array().unwrap().len(), past["total"].as_i64()),
        (0, Some(5))
    );
    // Without parameters: the first 50; over the cap: 200; bad values: the defaults,
    // as on every other list.
    for (query, per_page) in [
        ("", 50),
        ("?per_page=1000", 200),
        ("?page=x&per_page=-1", 50),
        ("?page=0&per_page=", 50),
        ("?page=%FF&per_page=1e3", 50),
    ] {
        let (status, res) = c.get(&format!("/api/sms/batch/{batch}{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {res}");
        assert_eq!(
            page_fields(&res),
            (Some(1), Some(per_page), Some(5), Some(1)),
            "{query}"
        );
        assert_eq!(res["messages"].as_array().unwrap().len(), 5, "{query}");
    }
    // An unknown batch is not found, whatever the page.
    let (status, res) = c
        .get("/api/sms/batch/0192f7a4-0000-7000-8000-000000000000?page=2")
        .await;
    assert_eq!(
        (status, res),
        (
            StatusCode::NOT_FOUND,
            json!({"data": {}, "message": "Batch not found.", "status": 404})
        )
    );
}

#[tokio::test]
async fn the_api_key_list_is_paged_newest_first_revoked_keys_included() {
    let app = TestApp::spawn().await;
    let c = Caller::new(&app, "paged-keys@example.org").await;
    let mut made = Vec::new();
    for i in 0..4 {
        let (status, key) = c.post("/api/api-keys", json!({"name": format!("key {i}")})).await;
        assert_eq!(status, StatusCode::OK, "{key}");
        made.push(key["id"].as_str().unwrap().to_owned());
    }
    // A revoked key is still listed (until the purge removes it after 30 days).
    let res = c
        .http
        .delete(app.url(&format!("/api/api-keys/{}", made[0])))
        .header("x-api-key", &c.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let other = Caller::new(&app, "unpaged-keys@example.org").await;
    other.post("/api/api-keys", json!({"name": "theirs"})).await;

    // Five keys: the caller's own "test" key first made, then the four.
    let mut seen = Vec::new();
    for (page, expect) in [(1, 2), (2, 2), (3, 1)] {
        let (status, res) = c.get(&format!("/api/api-keys?page={page}&per_page=2")).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        assert_eq!(page_fields(&res), (Some(page), Some(2), Some(5), Some(3)));
        assert_eq!(res["items"].as_array().unwrap().len(), expect);
        seen.extend(ids(&res["items"]));
    }
    let newest: Vec<String> = made.iter().rev().cloned().collect();
    assert_eq!(seen[..4], newest[..], "newest first");
    let (_, all) = c.get("/api/api-keys?per_page=500&page=nope").await;
    assert_eq!(page_fields(&all), (Some(1), Some(200), Some(5), Some(1)));
    let revoked: Vec<&Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["active"] == false)
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["id"], made[0].as_str());
    assert!(all["items"][0].get("key").is_none(), "a list never shows a key");
}

#[tokio::test]
async fn huge_page_numbers_on_pages_answer_an_empty_page_not_an_error() {
    let app = TestApp::spawn().await;
    app.signed_in_user("pages@example.org", "correct horse battery")
        .await;
    for path in [
        "/contacts?page=9223372036854775807",
        "/contacts?page=-9223372036854775808",
        "/contacts?page=99999999999999999999",
        "/templates?page=9223372036854775807",
        "/contacts/groups?page=9223372036854775807",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
}
