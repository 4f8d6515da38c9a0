"""Every tenant's groups and devices in memory, indexed the way the ingest path looks them up.

Theory of operation. An MQTT topic names no tenant: ``/json/<apikey>/<device_id>/attrs`` names
an apikey, a LoRaWAN uplink an application on a network server. So the apikey, and the LoRaWAN
application, must each lead to exactly one tenant, or a device of one town could write into
another town's data. The registry keeps two invariants, checked before anything changes:

- a non-empty apikey is used (by groups or devices) in one tenant only;
- a LoRaWAN application ``(server URL, application id)`` belongs to one tenant and has at most
  one group there; a dev_eui is provisioned once per application;
- a LoRaWAN application is reached one way: its group and devices name the same login and
  provider (``ApplicationServer.connection``), so it is subscribed to with that login and that
  provider's topics. Only a change of the group itself may change them (its devices then
  follow, see ``service``); anything else naming another login or provider is refused.

Indexes: apikey → (tenant, how many groups and devices use it); (tenant, apikey) → the group
the IoT Agent JSON path uses (``resource`` ``/iot/json`` first, as the IoT Agent looks there,
then the first created; LoRaWAN groups never); (server URL, application id) → ``LorawanApp``.
Pure and synchronous: ``service`` persists, this only remembers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.ngsild.errors import AlreadyExists
from broker.services.provisioning.model import ApplicationServer, Device, Group, Lorawan
from broker.services.provisioning.parse import DEFAULT_RESOURCE

AppKey = tuple[str, str]
"""(application server URL, application id): one LoRaWAN application."""


def group_key(group: Group) -> str:
    """The record key of a group; an apikey holds no ``|``, so the key is unambiguous."""
    return f"{group.resource}|{group.apikey}"


def app_key(settings: Lorawan) -> AppKey:
    return settings.application_server.url, settings.application_id


@dataclass(slots=True)
class LorawanApp:
    """One LoRaWAN application: its tenant, its group and its provisioned devices."""

    tenant: str
    group: Group | None = None
    by_id: dict[str, Device] = field(default_factory=dict)
    by_eui: dict[str, Device] = field(default_factory=dict)

    @property
    def server(self) -> ApplicationServer:
        """How to reach its broker: the group's settings, else the first device's."""
        holder = self.group or next(iter(self.by_id.values()))
        assert holder.lorawan is not None  # only LoRaWAN groups and devices are filed here
        return holder.lorawan.application_server

    @property
    def empty(self) -> bool:
        return self.group is None and not self.by_id


class Registry:
    """Groups and devices per tenant, in creation order, with the lookup indexes."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[str, Group]] = {}
        self.devices: dict[str, dict[str, Device]] = {}
        self.apps: dict[AppKey, LorawanApp] = {}
        self._apikeys: dict[str, tuple[str, int]] = {}
        self._iota_groups: dict[tuple[str, str], Group] = {}
        self._servers_of: dict[str, set[str]] = {}
        """application id → URLs of the servers it is provisioned on."""

    def group(self, tenant: str, key: str) -> Group | None:
        return self.groups.get(tenant, {}).get(key)

    def device(self, tenant: str, device_id: str) -> Device | None:
        return self.devices.get(tenant, {}).get(device_id)

    def apikey_tenant(self, apikey: str) -> str | None:
        """The tenant that uses ``apikey``, if any."""
        owner = self._apikeys.get(apikey) if apikey else None
        return None if owner is None else owner[0]

    def iota_group(self, tenant: str, apikey: str) -> Group | None:
        """The group whose settings IoT Agent JSON messages with ``apikey`` get."""
        return self._iota_groups.get((tenant, apikey))

    def app(self, application_id: str, server_url: str | None) -> LorawanApp | None:
        """The application; without a server URL only if one server has that application id."""
        if server_url is None:
            urls = self._servers_of.get(application_id, set())
            if len(urls) != 1:
                return None
            (server_url,) = urls
        return self.apps.get((server_url, application_id))

    def check_group(self, tenant: str, group: Group, *, replacing: bool = False) -> None:
        """Raise ``AlreadyExists`` unless ``group`` can be added (or replace its namesake)."""
        if not replacing and group_key(group) in self.groups.get(tenant, {}):
            raise AlreadyExists(
                f"a group with resource {group.resource!r} and apikey {group.apikey!r} "
                "already exists"
            )
        self._check_apikey(tenant, group.apikey)
        if group.lorawan is not None:
            app = self._check_app(tenant, group.lorawan, same_connection=not replacing)
            if app is not None and app.group is not None:
                raise AlreadyExists(
                    f"LoRaWAN application {group.lorawan.application_id!r} already has a group "
                    f"(resource {app.group.resource!r})"
                )

    def check_device(self, tenant: str, device: Device, *, replacing: bool = False) -> None:
        """Raise ``AlreadyExists`` unless ``device`` can be added (or replace its namesake)."""
        if not replacing and device.device_id in self.devices.get(tenant, {}):
            raise AlreadyExists(f"device {device.device_id!r} already exists")
        if device.apikey is not None:
            self._check_apikey(tenant, device.apikey)
        if device.lorawan is not None:
            app = self._check_app(tenant, device.lorawan, same_connection=True)
            eui = device.lorawan.dev_eui
            other = None if app is None or eui is None else app.by_eui.get(eui)
            if other is not None and other.device_id != device.device_id:
                raise AlreadyExists(f"dev_eui {eui} is already provisioned as {other.device_id!r}")

    def add_group(self, tenant: str, group: Group) -> None:
        """File a checked group."""
        self.groups.setdefault(tenant, {})[group_key(group)] = group
        self._index_group(tenant, group)
        self._pick_iota_group(tenant, group.apikey)

    def remove_group(self, tenant: str, group: Group) -> None:
        del self.groups[tenant][group_key(group)]
        self._unindex_group(tenant, group)
        self._pick_iota_group(tenant, group.apikey)

    def replace_group(self, tenant: str, old: Group, new: Group) -> None:
        """Put ``new`` where ``old`` was (same key); ``AlreadyExists`` leaves ``old`` in place."""
        self._unindex_group(tenant, old)
        try:
            self.check_group(tenant, new, replacing=True)
        except AlreadyExists:
            self._index_group(tenant, old)
            raise
        self.groups[tenant][group_key(new)] = new
        self._index_group(tenant, new)
        self._pick_iota_group(tenant, new.apikey)

    def add_device(self, tenant: str, device: Device) -> None:
        """File a checked device."""
        self.devices.setdefault(tenant, {})[device.device_id] = device
        self._index_device(tenant, device)

    def remove_device(self, tenant: str, device: Device) -> None:
        del self.devices[tenant][device.device_id]
        self._unindex_device(tenant, device)

    def replace_device(self, tenant: str, old: Device, new: Device) -> None:
        """Put ``new`` where ``old`` was; ``AlreadyExists`` leaves ``old`` in place."""
        self._unindex_device(tenant, old)
        try:
            self.check_device(tenant, new, replacing=True)
        except AlreadyExists:
            self._index_device(tenant, old)
            raise
        self.devices[tenant][new.device_id] = new
        self._index_device(tenant, new)

    def _check_apikey(self, tenant: str, apikey: str) -> None:
        owner = self.apikey_tenant(apikey)
        if owner is not None and owner != tenant:
            # The other tenant stays unnamed: tenants must not learn about each other.
            raise AlreadyExists(f"apikey {apikey!r} is already used by another tenant")

    def _check_app(
        self, tenant: str, settings: Lorawan, *, same_connection: bool
    ) -> LorawanApp | None:
        app = self.apps.get(app_key(settings))
        if app is None:
            return None
        where = (
            f"LoRaWAN application {settings.application_id!r} on {settings.application_server.url}"
        )
        if app.tenant != tenant:
            raise AlreadyExists(f"{where} is provisioned by another tenant")
        if same_connection and app.server.connection != settings.application_server.connection:
            # Which login or provider differs stays unsaid: the message must not leak secrets.
            raise AlreadyExists(
                f"{where} is already provisioned with another login or provider; give its "
                "application_server the same settings, or change them on its group "
                "(PUT /iot/groups), which its devices follow"
            )
        return app

    def _index_group(self, tenant: str, group: Group) -> None:
        self._use_apikey(tenant, group.apikey, 1)
        if group.lorawan is not None:
            self._app(tenant, group.lorawan).group = group

    def _unindex_group(self, tenant: str, group: Group) -> None:
        self._use_apikey(tenant, group.apikey, -1)
        if group.lorawan is not None:
            app = self.apps[app_key(group.lorawan)]
            app.group = None
            self._drop_if_empty(group.lorawan, app)

    def _index_device(self, tenant: str, device: Device) -> None:
        if device.apikey is not None:
            self._use_apikey(tenant, device.apikey, 1)
        if device.lorawan is not None:
            app = self._app(tenant, device.lorawan)
            app.by_id[device.device_id] = device
            if device.lorawan.dev_eui is not None:
                app.by_eui[device.lorawan.dev_eui] = device

    def _unindex_device(self, tenant: str, device: Device) -> None:
        if device.apikey is not None:
            self._use_apikey(tenant, device.apikey, -1)
        if device.lorawan is not None:
            app = self.apps[app_key(device.lorawan)]
            del app.by_id[device.device_id]
            if device.lorawan.dev_eui is not None:
                app.by_eui.pop(device.lorawan.dev_eui, None)
            self._drop_if_empty(device.lorawan, app)

    def _use_apikey(self, tenant: str, apikey: str, delta: int) -> None:
        if not apikey:
            return
        owner, uses = self._apikeys.get(apikey, (tenant, 0))
        if uses + delta > 0:
            self._apikeys[apikey] = (owner, uses + delta)
        else:
            self._apikeys.pop(apikey, None)

    def _app(self, tenant: str, settings: Lorawan) -> LorawanApp:
        key = app_key(settings)
        if key not in self.apps:
            self.apps[key] = LorawanApp(tenant)
            self._servers_of.setdefault(settings.application_id, set()).add(key[0])
        return self.apps[key]

    def _drop_if_empty(self, settings: Lorawan, app: LorawanApp) -> None:
        if app.empty:
            url, application_id = app_key(settings)
            del self.apps[url, application_id]
            urls = self._servers_of[application_id]
            urls.discard(url)
            if not urls:
                del self._servers_of[application_id]

    def _pick_iota_group(self, tenant: str, apikey: str) -> None:
        candidates = [
            group
            for group in self.groups.get(tenant, {}).values()
            if group.apikey == apikey and group.lorawan is None
        ]
        preferred = [group for group in candidates if group.resource == DEFAULT_RESOURCE]
        chosen = preferred or candidates
        if chosen and apikey:
            self._iota_groups[tenant, apikey] = chosen[0]
        else:
            self._iota_groups.pop((tenant, apikey), None)
