//! The allow-list against what the bytes show, over HTTP: a PDF labelled `image/png` is refused
//! even where both types are allowed; labelled honestly it is stored.

use crate::helpers::spawn_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_labelled_png_is_refused_where_images_and_pdfs_are_allowed() {
    let app = spawn_with(|c| {
        c.limits.allowed_content_types = vec!["image/*".into(), "application/pdf".into()];
    })
    .await;
    let t = app.token("john1").await;
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n".to_vec();
    let put = |name: &str, ct: &str| {
        app.client
            .put(app.url(&format!("/api/v2/files/doc/1/{name}")))
            .bearer_auth(&t)
            .header("Content-Type", ct.to_owned())
            .body(pdf.clone())
            .send()
    };
    let r = put("fake.png", "image/png").await.expect("PUT");
    assert_eq!(r.status(), 415);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["code"], "unsupported_media_type", "{v}");
    assert_eq!(
        put("real.pdf", "application/pdf")
            .await
            .expect("PUT")
            .status(),
        201
    );
    let (_, listing) = app.get(&t, "/api/files/doc/1").await;
    assert_eq!(crate::helpers::names(&listing), ["real.pdf"]);
}
