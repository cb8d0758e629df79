# The CloudWatch dashboards' bodies, worked out from the variables and locals.tf alone (no
# resource, no data source), so that a test can evaluate them with the terraform binary and check
# them against CloudWatch's body structure and limits. monitoring.tf creates one dashboard per
# page.
#
# Layout (24 columns): a header row with the fleet's totals, then a row per consumer:
#   running against desired tasks | CPU and memory | tasks stopped | Kafka lag (where MSK is set)
# Past `dashboard_consumers_per_page` consumers the rows continue on another dashboard, each
# with the header: CloudWatch takes at most 500 widgets and 2,500 metrics per dashboard.

locals {
  # Dashboards are global to the account: the project and environment make the names unique,
  # and "cdc-" tells them from others. Names take letters, digits, "-" and "_", up to 255.
  dashboard_prefix = "cdc-${var.project_name}-${var.environment}"

  # The metric the stopped-task events become (monitoring.tf): one value per task stopped by
  # its own failure, with the service as `Group` (`service:<name>`).
  stopped_tasks_namespace = "CDC/${var.project_name}/${var.environment}"
  stopped_tasks_metric    = "TasksStopped"

  # The event rule and the log resource policy names: the cluster's name, cut with a hash past
  # 50 characters (a rule's name stops at 64).
  task_events_name = length(local.name) <= 50 ? local.name : "${substr(local.name, 0, 41)}-${substr(sha1(local.name), 0, 8)}"

  # At most this many topics' lag (topics named by a wildcard are not drawn: MSK's metrics name
  # the topic) per consumer on its lag widget (each topic is a metric).
  dashboard_lag_topics = 10

  dashboard_names = sort(keys(var.consumers))
  dashboard_pages = [
    for i in range(0, length(local.dashboard_names), var.dashboard_consumers_per_page) :
    slice(local.dashboard_names, i, min(i + var.dashboard_consumers_per_page, length(local.dashboard_names)))
  ]

  # Each consumer's widgets, left to right; y is set per page.
  dashboard_rows = {
    for name in local.dashboard_names : name => concat(
      [
        {
          type   = "metric"
          x      = 0
          width  = 6
          height = 6
          properties = {
            title  = "${name}: tasks running / desired"
            region = var.aws_region
            view   = "timeSeries"
            stat   = "Average"
            period = 60
            metrics = [
              ["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", local.name, "ServiceName", name, { label = "running" }],
              ["ECS/ContainerInsights", "DesiredTaskCount", "ClusterName", local.name, "ServiceName", name, { label = "desired" }],
            ]
            yAxis = { left = { min = 0 } }
          }
        },
        {
          type   = "metric"
          x      = 6
          width  = 6
          height = 6
          properties = {
            title  = "${name}: CPU and memory (% of the task's)"
            region = var.aws_region
            view   = "timeSeries"
            stat   = "Average"
            period = 60
            metrics = [
              ["AWS/ECS", "CPUUtilization", "ClusterName", local.name, "ServiceName", name, { label = "CPU" }],
              ["AWS/ECS", "MemoryUtilization", "ClusterName", local.name, "ServiceName", name, { label = "memory" }],
            ]
            yAxis = { left = { min = 0, max = 100 } }
          }
        },
        {
          type   = "metric"
          x      = 12
          width  = 6
          height = 6
          properties = {
            title  = "${name}: tasks stopped by a failure"
            region = var.aws_region
            view   = "timeSeries"
            stat   = "Sum"
            period = 300
            metrics = [
              [local.stopped_tasks_namespace, local.stopped_tasks_metric, "Group", "service:${name}", { label = "stopped" }],
            ]
            yAxis = { left = { min = 0 } }
          }
        },
      ],
      [
        for msk in [local.consumers[name].msk] : {
          type   = "metric"
          x      = 18
          width  = 6
          height = 6
          properties = {
            title  = "${name}: Kafka lag (messages)"
            region = var.aws_region
            view   = "timeSeries"
            stat   = "Maximum"
            period = 60
            metrics = [
              for topic in slice(local.consumers[name].lag_topics, 0, min(local.dashboard_lag_topics, length(local.consumers[name].lag_topics))) :
              ["AWS/Kafka", "SumOffsetLag", "Cluster Name", msk.cluster, "Consumer Group", msk.consumer_group, "Topic", topic, { label = topic }]
            ]
            yAxis = { left = { min = 0 } }
          }
        } if length(local.consumers[name].lag_topics) > 0
      ],
    )
  }

  # The header: what the page holds, then the fleet's totals. Each total is one Metrics Insights
  # query over the cluster (one series, whatever the fleet's size; one query per widget is what
  # CloudWatch allows), so the header costs the same at 5 consumers and at 500.
  dashboard_totals = [
    ["Fleet: tasks running", "SELECT SUM(RunningTaskCount) FROM SCHEMA(\"ECS/ContainerInsights\", ClusterName, ServiceName) WHERE ClusterName = '${local.name}'", null],
    ["Fleet: tasks desired", "SELECT SUM(DesiredTaskCount) FROM SCHEMA(\"ECS/ContainerInsights\", ClusterName, ServiceName) WHERE ClusterName = '${local.name}'", null],
    ["Fleet: busiest CPU (%)", "SELECT MAX(CPUUtilization) FROM SCHEMA(\"AWS/ECS\", ClusterName, ServiceName) WHERE ClusterName = '${local.name}'", 100],
    ["Fleet: busiest memory (%)", "SELECT MAX(MemoryUtilization) FROM SCHEMA(\"AWS/ECS\", ClusterName, ServiceName) WHERE ClusterName = '${local.name}'", 100],
    ["Fleet: tasks stopped by a failure", "SELECT SUM(${local.stopped_tasks_metric}) FROM SCHEMA(\"${local.stopped_tasks_namespace}\", \"Group\")", null],
  ]

  dashboard_header = [
    for p, page in local.dashboard_pages : concat(
      [{
        type   = "text"
        x      = 0
        y      = 0
        width  = 4
        height = 6
        properties = {
          markdown = join("\n", [
            "## ${var.project_name} / ${var.environment}",
            "CDC consumers on ECS cluster `${local.name}` (${var.aws_region}).",
            "",
            "Page ${p + 1} of ${length(local.dashboard_pages)}: ${length(page)} of ${length(local.dashboard_names)} consumers, `${page[0]}` to `${page[length(page) - 1]}`.",
            "",
            "A consumer is watched by its lag: lag that grows while its tasks run is a consumer that cannot keep up; every task stopped is a rebalance.",
          ])
        }
      }],
      [
        for i, t in local.dashboard_totals : {
          type   = "metric"
          x      = 4 + 4 * i
          y      = 0
          width  = 4
          height = 6
          properties = {
            title   = t[0]
            region  = var.aws_region
            view    = "timeSeries"
            period  = t[0] == "Fleet: tasks stopped by a failure" ? 300 : 60
            metrics = [[{ id = "q${i}", label = t[0], expression = t[1] }]]
            yAxis   = { left = t[2] == null ? tomap({ min = 0 }) : tomap({ min = 0, max = t[2] }) }
          }
        }
      ],
    )
  ]

  # Page name => body.
  dashboards = {
    for p, page in local.dashboard_pages :
    (length(local.dashboard_pages) == 1 ? local.dashboard_prefix : "${local.dashboard_prefix}-${p + 1}") => jsonencode({
      start          = "-PT3H"
      periodOverride = "inherit"
      widgets = concat(
        local.dashboard_header[p],
        flatten([
          for row, name in page : [
            for w in local.dashboard_rows[name] : merge(w, { y = 6 * (row + 1) })
          ]
        ]),
      )
    })
  }
}
