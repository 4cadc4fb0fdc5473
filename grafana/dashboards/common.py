"""What the botwatch dashboards share: the datasource, the panel helpers, the layout grid."""

from grafanalib.core import Dashboard, GridPos, Stat, Target, Template, Templating, Time, TimeSeries

from botwatch.core.mixin import CONFIG, selector

DATASOURCE = "Prometheus"          # the provisioned datasource's name (grafana/provisioning/datasources)
BOT_SELECTOR = 'bot=~"$bot"'
WIDTH = 24
HEIGHT = 8
# windows come from the mixin, like the rules' and the report's
UPTIME = CONFIG["dashboard_uptime_window"]          # read from its recording rule
INCREASE = CONFIG["dashboard_increase_window"]      # "how many in the last …" panels
API_ERRORS = CONFIG["auth_error_window"]            # the window TradingBotApiKeyErrors looks at


def botwatch_dashboard(title: str, uid: str, panels: list, variables: list | None = None) -> Dashboard:
    """A botwatch dashboard: tagged, UTC, refreshed every 30s, the last 6 hours, panel ids assigned."""
    return Dashboard(title=title, uid=uid, tags=["botwatch"], timezone="utc", refresh="30s",
                     time=Time("now-6h", "now"), templating=Templating(list=variables or []),
                     panels=panels).auto_panel_ids()


def target(expr: str, legend: str = "{{bot}}", ref: str = "A") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE)


def timeseries(title: str, targets: list[Target], x: int, y: int, w: int = 12, h: int = HEIGHT, unit: str = "",
               description: str = "") -> TimeSeries:
    return TimeSeries(title=title, dataSource=DATASOURCE, targets=targets, gridPos=GridPos(h=h, w=w, x=x, y=y),
                      unit=unit, description=description)


def stat(title: str, targets: list[Target], x: int, y: int, w: int = 6, h: int = 4, unit: str = "",
         description: str = "", mappings=None, thresholds=None) -> Stat:
    kwargs = {"mappings": mappings} if mappings else {}
    if thresholds:
        kwargs["thresholds"] = thresholds
    return Stat(title=title, dataSource=DATASOURCE, targets=targets, gridPos=GridPos(h=h, w=w, x=x, y=y),
                format=unit or "none", description=description, reduceCalc="lastNotNull", **kwargs)


def host_variable() -> Template:
    """The hosts (every bot's `host` label: `local` on one machine); the bot variable lists the chosen ones' bots."""
    return Template(name="host", label="host", query="label_values(tradingbot_info, host)", dataSource=DATASOURCE,
                    includeAll=True, multi=True, default="$__all", refresh=2)


def bot_variable(multi: bool = True, by_host: bool = False) -> Template:
    """The bots; `by_host`: only those on the hosts of the host variable, so `bot=~"$bot"` alone also filters
    the remediator's series, which have no `host` label."""
    series = 'tradingbot_info{host=~"$host"}' if by_host else "tradingbot_info"
    return Template(name="bot", label="bot", query=f"label_values({series}, bot)", dataSource=DATASOURCE,
                    includeAll=multi, multi=multi, default="$__all" if multi else None, refresh=2)


def up(part: str, extra: str = "") -> str:
    """`up` of one of botwatch's own scrape jobs, by the mixin's job name."""
    return "up{" + selector(CONFIG, part) + extra + "}"
