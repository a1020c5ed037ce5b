//! `GET /c/{offer_id}` (API.md §1).

use crate::helpers::*;

#[tokio::test]
async fn a_click_redirects_to_the_offer_with_a_click_id_and_stores_it_first() {
    // Arrange
    let app = spawn_app().await;
    app.with_offer_and_affiliate().await;

    // Act
    let response = app.click("o1", "aff_id=a1&sub1=news").await;

    // Assert
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let location = location(&response);
    let click_id = click_id_from(&location).expect("click id in Location");
    assert_eq!(
        location,
        format!("https://shop.example/landing?utm=x&click_id={click_id}#top")
    );
    let stored: Option<String> = redis::cmd("GET")
        .arg(
            app.redis_keys()
                .iter()
                .find(|k| k.ends_with(&click_id))
                .expect("click key"),
        )
        .query(&mut app.redis())
        .expect("GET");
    assert!(stored.expect("click stored").contains("news"));
}
