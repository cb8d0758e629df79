//! The image builder against the machine's Docker engine, with both of its builders: what is
//! built is exactly what was fingerprinted, and a file edited in between fails the build.

mod support;

use std::collections::HashMap;

use cdc_deploy::clients::builder::{
    Backend, BuildError, BuildRequest, DockerEngine, ImageBuilder as _,
};
use cdc_deploy::consumers::config::{BuildSettings, Platform};
use cdc_deploy::context::fingerprint::fingerprint;
use cdc_deploy::context::tar::{Expected, SentContextError};
use cdc_deploy::context::BuildContext;

fn request(ctx: &BuildContext, expected: Expected, tag: &str) -> BuildRequest {
    BuildRequest {
        context: ctx.clone(),
        expected,
        target: None,
        args: HashMap::new(),
        platform: "linux/amd64".into(),
        tag: tag.into(),
        labels: HashMap::new(),
        logins: vec![],
        cache_from: vec![],
        inline_cache: false,
    }
}

fn image_exists(tag: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", tag])
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_edited_after_fingerprinting_is_not_built() {
    for buildkit in [true, false] {
        let engine = DockerEngine::connect(std::env::var("DOCKER_HOST").ok().as_deref(), buildkit)
            .await
            .expect("the Docker engine answers");
        assert_eq!(*engine.backend() == Backend::BuildKit, buildkit);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM {}\nCOPY app.py /app.py\n", support::base_image()),
        )
        .unwrap();
        std::fs::write(dir.path().join("app.py"), "print('v1')\n").unwrap();
        let build = BuildSettings {
            dockerfile: "Dockerfile".into(),
            target: None,
            args: Default::default(),
        };
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        let planned = fingerprint(&ctx, &build, Platform::LinuxAmd64).unwrap();
        let expected = Expected {
            fingerprint: planned.fingerprint.clone(),
            build: build.clone(),
            platform: Platform::LinuxAmd64,
        };

        // Unchanged: it builds.
        let tag = format!("cdc-test/{}:1", support::unique("same"));
        engine
            .build(request(&ctx, expected.clone(), &tag), &mut |_| {})
            .await
            .unwrap_or_else(|e| panic!("buildkit={buildkit}: {e}"));
        assert!(image_exists(&tag));
        let _ = std::process::Command::new("docker")
            .args(["rmi", &tag])
            .output();

        // Same size, other bytes, after the fingerprint: refused, and no image.
        std::fs::write(dir.path().join("app.py"), "print('v2')\n").unwrap();
        let tag = format!("cdc-test/{}:1", support::unique("changed"));
        let err = engine
            .build(request(&ctx, expected, &tag), &mut |_| {})
            .await
            .unwrap_err();
        match &err {
            BuildError::ContextChanged(SentContextError::Mismatch { planned: p, .. }) => {
                assert_eq!(p, planned.fingerprint.hex())
            }
            other => panic!("buildkit={buildkit}: {other:?}"),
        }
        assert!(
            err.to_string()
                .contains("changed after it was fingerprinted"),
            "{err}"
        );
        assert!(
            !image_exists(&tag),
            "buildkit={buildkit}: nothing was built"
        );
    }
}
