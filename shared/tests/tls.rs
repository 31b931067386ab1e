//! The TLS configuration every HTTP client of a process shares (`http::tls`, also under the
//! Brevo client): clients reach an HTTPS server whose certificate chains to a root the platform
//! trusts, and refuse one whose certificate does not.
//!
//! The platform's roots are read from `SSL_CERT_FILE`, pointed at the test CA before the first
//! client is built (this binary holds this one test, so nothing else reads the roots first).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/tls/{name}"))
}

/// An HTTPS server on 127.0.0.1 presenting `cert`, answering every request with 200 `ok`.
async fn https_server(cert: &str, key: &str) -> u16 {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture(cert))
        .expect("certificate file")
        .collect::<Result<_, _>>()
        .expect("certificate");
    let key = PrivateKeyDer::from_pem_file(fixture(key)).expect("key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

#[tokio::test]
async fn clients_trust_the_platform_roots_and_nothing_else() {
    // SAFETY: set before any thread of this test binary reads the environment (the roots are
    // read on the first client build, below).
    unsafe { std::env::set_var("SSL_CERT_FILE", fixture("ca.pem")) };
    unsafe { std::env::remove_var("SSL_CERT_DIR") };

    let trusted = https_server("server.pem", "server.key").await;
    let untrusted = https_server("untrusted.pem", "untrusted.key").await;
    let helpdesk = deskbridge_shared::http::client().expect("helpdesk client");
    let second = deskbridge_shared::http::client().expect("a second client, on the same roots");

    for client in [&helpdesk, &second] {
        let answer = client
            .get(format!("https://localhost:{trusted}/ping"))
            .send()
            .await
            .expect("a certificate chaining to a trusted root is accepted");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.text().await.expect("body"), "ok");
    }

    let refused = helpdesk
        .get(format!("https://localhost:{untrusted}/ping"))
        .send()
        .await;
    let error = refused.expect_err("a self-signed certificate is refused");
    let chain = {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    };
    assert!(
        chain.to_lowercase().contains("certificate"),
        "the refusal names the certificate: {chain}"
    );
}
