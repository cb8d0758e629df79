//! Every external system a run talks to, built once at its start: the real clients by
//! [`Services::connect`], fakes in tests, each behind the small trait `crate::clients` gives it.
//! The stages take what they need from here and never build a client of their own.

use std::sync::Arc;

use async_trait::async_trait;

use super::RunError;
use crate::cancel::Cancel;
use crate::clients::alarms::{AlarmReader, Alarms};
use crate::clients::builder::{DockerEngine, EngineError, ImageBuilder, RegistryLogin};
use crate::clients::ecr::{Ecr, RepositoryService, ScanReader};
use crate::clients::ecs::{Deployer, Ecs};
use crate::clients::github::{GitHub, GithubApi};
use crate::clients::logs::{LogReader, Logs};
use crate::clients::registry::{HttpRegistry, Registry, RegistryAuth};
use crate::clients::terraform::Terraform;
use crate::config::Settings;
use crate::gha::Runner;
use crate::reference::RegistryHost;

/// Attempts per AWS API call (the SDK's standard retry mode, exponential backoff with jitter).
pub const AWS_ATTEMPTS: u32 = 5;

/// The clients of a run.
pub struct Services {
    /// AWS and the registry; `None` for a run that asks AWS nothing (an offline plan).
    pub aws: Option<AwsServices>,
    /// GitHub's API for the repository; `None` without a repository or a token.
    pub github: Option<Arc<dyn GitHub>>,
    /// The Docker engine, connected when something is to be built.
    pub engine: Arc<dyn EngineSource>,
    /// Terraform in the run's root module; `None` when the Terraform stage is off.
    pub terraform: Option<Arc<dyn Terraform>>,
}

/// The clients of a run that talks to AWS.
pub struct AwsServices {
    /// The region the clients (and Terraform's provider) use.
    pub region: String,
    /// The registry images are pushed to and referenced by.
    pub registry_host: RegistryHost,
    pub login: RegistryLogin,
    pub ecr: Arc<dyn RepositoryService>,
    pub scans: Arc<dyn ScanReader>,
    pub registry: Arc<dyn Registry>,
    pub deployer: Arc<dyn Deployer>,
    pub logs: Arc<dyn LogReader>,
    pub alarms: Arc<dyn AlarmReader>,
}

/// Where the image builder comes from: a run that builds nothing never connects.
#[async_trait]
pub trait EngineSource: Send + Sync {
    async fn connect(&self) -> Result<Arc<dyn ImageBuilder>, EngineError>;
}

/// The machine's Docker engine.
pub struct DockerSource {
    pub docker_host: Option<String>,
    pub buildkit: bool,
    pub cancel: Cancel,
}

#[async_trait]
impl EngineSource for DockerSource {
    async fn connect(&self) -> Result<Arc<dyn ImageBuilder>, EngineError> {
        let engine = DockerEngine::connect(self.docker_host.as_deref(), self.buildkit).await?;
        Ok(Arc::new(engine.with_cancel(&self.cancel)))
    }
}

impl Services {
    /// The real clients for `settings`: AWS unless `offline`, GitHub when there is a repository
    /// and a token, the Docker engine, and Terraform when its stage is on. A token is masked the
    /// moment it is read; so are the registry's credentials the moment ECR gives them.
    pub async fn connect(
        settings: &Settings,
        runner: &Runner,
        cancel: &Cancel,
        offline: bool,
        registry_host: Option<&RegistryHost>,
    ) -> Result<Services, RunError> {
        let aws = if offline {
            None
        } else {
            Some(connect_aws(settings, runner, cancel, registry_host).await?)
        };
        let terraform: Option<Arc<dyn Terraform>> =
            (settings.terraform.enabled && !offline).then(|| {
                Arc::new(crate::apply::infra::cli(
                    &settings.terraform,
                    Some(cancel.clone()),
                )) as Arc<dyn Terraform>
            });
        Ok(Services {
            aws,
            github: github_client(settings, runner, cancel),
            engine: Arc::new(DockerSource {
                docker_host: settings.docker_host.clone(),
                buildkit: settings.buildkit,
                cancel: cancel.clone(),
            }),
            terraform,
        })
    }
}

/// The GitHub client of the run: `None` without a repository or a token (under Actions a
/// missing token is said once, when the run would use GitHub).
fn github_client(settings: &Settings, runner: &Runner, cancel: &Cancel) -> Option<Arc<dyn GitHub>> {
    let gh = &settings.github;
    let repository = gh.repository.as_deref()?;
    let uses_github = gh.comment != crate::report::publish::CommentMode::Never
        || gh.check_runs
        || matches!(&settings.action, crate::config::Action::Deploy(d) if d.deployments);
    let Some(token) = &gh.token else {
        if runner.is_actions() && uses_github {
            runner.warning(
                "no GitHub token: no pull request comment, check runs or deployment; pass `github-token` (the action's default is the job's token)",
            );
        }
        return None;
    };
    match GithubApi::new(&gh.api_url, repository, token.expose()) {
        Ok(api) => Some(Arc::new(api.with_cancel(cancel))),
        Err(e) => {
            runner.warning(&format!("GitHub cannot be reported to: {e}"));
            None
        }
    }
}

/// The region: the setting (input, `AWS_REGION`, `AWS_DEFAULT_REGION`), else the profile's.
/// Instance metadata is not asked: on a runner without it that only costs seconds of retries
/// before the same answer.
async fn region(settings: &Settings) -> Result<aws_config::Region, RunError> {
    use aws_config::meta::region::ProvideRegion as _;
    if let Some(r) = &settings.aws_region {
        return Ok(aws_config::Region::new(r.clone()));
    }
    aws_config::profile::ProfileFileRegionProvider::new()
        .region()
        .await
        .ok_or_else(|| {
            RunError::Start(
                "no AWS region is set; set the `aws-region` input or `AWS_REGION`, for example `us-east-1`"
                    .into(),
            )
        })
}

/// Load the AWS configuration, get the registry credentials (masked the moment they arrive) and
/// open the registry the images live in.
async fn connect_aws(
    settings: &Settings,
    runner: &Runner,
    cancel: &Cancel,
    registry_host: Option<&RegistryHost>,
) -> Result<AwsServices, RunError> {
    let region = region(settings).await?;
    // Instance metadata stays in the credential chain (self-hosted runners on EC2 use it), asked
    // once and briefly.
    let imds = aws_config::imds::Client::builder()
        .max_attempts(1)
        .connect_timeout(std::time::Duration::from_secs(1))
        .read_timeout(std::time::Duration::from_secs(1))
        .build();
    let credentials = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .region(region.clone())
        .imds_client(imds)
        .build()
        .await;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .credentials_provider(credentials);
    if !settings.aws_retry_from_env {
        loader = loader.retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(AWS_ATTEMPTS)
                .with_initial_backoff(std::time::Duration::from_millis(500)),
        );
    }
    let config = loader.load().await;
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    let ecr = Arc::new(Ecr::new(&config));
    let auth = ecr
        .authorization()
        .await
        .map_err(|e| RunError::Start(format!("could not get the registry credentials: {e}")))?;
    // Masked before anything else can print them: the password, and the `user:password` pair in
    // base64 as it appears in a basic auth header.
    runner.add_mask(auth.password.expose());
    {
        use base64::Engine as _;
        runner.add_mask(&base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            auth.username,
            auth.password.expose()
        )));
    }
    let host = match registry_host {
        Some(h) => h.clone(),
        None => {
            let endpoint = auth.proxy_endpoint.trim_start_matches("https://");
            RegistryHost::parse(endpoint).map_err(|_| {
                RunError::Start(format!(
                    "ECR returned no usable registry endpoint (`{}`); set the `registry-host` input",
                    auth.proxy_endpoint
                ))
            })?
        }
    };
    let registry_auth = RegistryAuth {
        username: auth.username.clone(),
        password: auth.password.clone(),
    };
    let registry = HttpRegistry::new(host.clone(), registry_auth.clone())
        .map_err(|e| RunError::Start(format!("could not set up the registry client: {e}")))?
        .with_cancel(cancel);
    Ok(AwsServices {
        region,
        login: RegistryLogin {
            host: host.host.clone(),
            auth: registry_auth,
        },
        registry_host: host,
        scans: ecr.clone(),
        ecr,
        registry: Arc::new(registry),
        deployer: Arc::new(Ecs::new(&config)),
        logs: Arc::new(Logs::new(&config)),
        alarms: Arc::new(Alarms::new(&config)),
    })
}
