//! A browser, as far as tracking can tell: a cookie jar, a user agent,
//! redirects followed hop by hop, and the `<img>` tags of each page loaded
//! (that is how a pixel runs).
//!
//! Each `Browser` is one jar: an in-app browser, the phone's system browser
//! and a laptop's browser share nothing, which is the whole point of the
//! simulation. Cookies are kept per host name (ports ignored, as browsers
//! do), by name and value only: the servers here set no attributes that
//! would change which requests carry them.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE, USER_AGENT};
use url::Url;

use crate::Error;

/// Redirects followed at most by [`Browser::open`], as browsers bound them.
const MAX_REDIRECTS: usize = 10;

/// One HTTP exchange, before any redirect is followed.
pub struct Hop {
    /// The URL requested.
    pub url: Url,
    /// The answer's status.
    pub status: u16,
    /// Where a redirect points, resolved against `url`.
    pub location: Option<Url>,
    /// The answer's body as text.
    pub body: String,
}

/// One browser with its own cookie jar.
pub struct Browser {
    client: reqwest::Client,
    user_agent: String,
    /// Host name → cookie name → value.
    jar: HashMap<String, BTreeMap<String, String>>,
}

impl Browser {
    /// A browser sending `user_agent`, resolving each of `hosts` to its
    /// loopback address (the simulation's DNS).
    pub fn new(user_agent: impl Into<String>, hosts: &[(&str, SocketAddr)]) -> Result<Self, Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        for (host, address) in hosts {
            builder = builder.resolve(host, *address);
        }
        Ok(Self {
            client: builder.build()?,
            user_agent: user_agent.into(),
            jar: HashMap::new(),
        })
    }

    /// One `GET` of `url` with this browser's cookies for its host, keeping
    /// the cookies the answer sets; a redirect is not followed.
    pub async fn fetch(&mut self, url: &Url) -> Result<Hop, Error> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut request = self
            .client
            .get(url.clone())
            .header(USER_AGENT, &self.user_agent);
        if let Some(cookies) = self.jar.get(&host).filter(|c| !c.is_empty()) {
            let header = cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(COOKIE, header);
        }
        let response = request.send().await?;
        for set in response.headers().get_all(SET_COOKIE) {
            let Ok(set) = set.to_str() else { continue };
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                self.jar
                    .entry(host.clone())
                    .or_default()
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        let status = response.status().as_u16();
        let location = match response.headers().get(LOCATION) {
            Some(value) => Some(url.join(value.to_str()?)?),
            None => None,
        };
        let body = response.text().await?;
        Ok(Hop {
            url: url.clone(),
            status,
            location,
            body,
        })
    }

    /// Opens `url` as a user would: follows redirects, then loads the final
    /// page's images. Answers the final page (a 2xx), else an error.
    pub async fn open(&mut self, url: &Url) -> Result<Hop, Error> {
        let mut hop = self.fetch(url).await?;
        for _ in 0..MAX_REDIRECTS {
            match (&hop.location, (300..400).contains(&hop.status)) {
                (Some(next), true) => {
                    let next = next.clone();
                    hop = self.fetch(&next).await?;
                }
                _ => break,
            }
        }
        if !(200..300).contains(&hop.status) {
            return Err(format!("{} answered {}: {}", hop.url, hop.status, hop.body).into());
        }
        for image in image_sources(&hop.body) {
            let image = hop.url.join(&image)?;
            let loaded = self.fetch(&image).await?;
            if !(200..300).contains(&loaded.status) {
                return Err(format!("image {image} answered {}", loaded.status).into());
            }
        }
        Ok(hop)
    }
}

/// The `src` of every `<img src="…">` in `html` (double-quoted, as the
/// simulation's pages write them), with `&amp;` decoded.
fn image_sources(html: &str) -> Vec<String> {
    html.match_indices("<img src=\"")
        .filter_map(|(at, tag)| {
            let rest = &html[at + tag.len()..];
            rest.find('"').map(|end| rest[..end].replace("&amp;", "&"))
        })
        .collect()
}
