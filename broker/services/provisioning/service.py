"""Device provisioning: the IoT Agent groups and devices of every tenant, and their lookups.

Theory of operation. Groups and devices live in the tenant's store as records (kind
``iot_group`` keyed ``<resource>|<apikey>``, kind ``iot_device`` keyed by device id), holding the
document the client sent, so they survive restarts and GET shows them back; ``start`` parses
them again. While the broker runs they are also held in a ``Registry``, where the ingest path
finds a message's device in O(1) without awaiting anything (``for_iota``, ``for_lorawan``).

Every change is made in memory first and then committed; if the commit fails the memory is put
back, so the two never disagree for longer than one write. A batch (several groups or devices in
one POST) is all or nothing. A change of a LoRaWAN group's login or provider is written to its
application's devices too (``following``), so all of one application's records keep naming one
way to reach it. After each change the ``listeners`` run, so the MQTT side can subscribe to new
LoRaWAN applications and drop old ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from broker.ngsild.errors import AlreadyExists, NgsiLdError, ResourceNotFound
from broker.services.provisioning.fields import is_device_id
from broker.services.provisioning.model import (
    ApplicationServer,
    Connection,
    Device,
    Effective,
    Group,
    Lorawan,
)
from broker.services.provisioning.parse import (
    autoprovisioned_doc,
    effective,
    following,
    parse_device_update,
    parse_devices,
    parse_group_update,
    parse_groups,
    with_dev_eui,
)
from broker.services.provisioning.registry import Registry, app_key, group_key
from broker.store.base import RecordChange, Store
from broker.store.everywhere import records_everywhere

_log = logging.getLogger(__name__)
GROUP: Final = "iot_group"
"""Record kind of config groups in the tenant store."""
DEVICE: Final = "iot_device"
"""Record kind of devices in the tenant store."""


class ProvisioningService:
    """Create, read, change and delete groups and devices; find a message's device."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._registry = Registry()
        self.listeners: list[Callable[[], None]] = []
        """Called after every change (the MQTT side re-subscribes)."""

    @property
    def store(self) -> Store:
        """The store the records live in (the ingest side keeps its installation id there)."""
        return self._store

    async def start(self) -> None:
        """Load every tenant's groups and devices; a record that no longer parses is skipped."""
        for kind in (GROUP, DEVICE):  # groups first: devices take defaults from them
            async for tenant, doc in records_everywhere(self._store, kind):
                self._load(tenant, kind, doc)

    def _load(self, tenant: str, kind: str, doc: dict[str, Any]) -> None:
        try:
            if kind == GROUP:
                self._add_groups(tenant, parse_groups({"groups": [doc]}))
            else:
                self._add_devices(tenant, parse_devices({"devices": [doc]}))
        except NgsiLdError as exc:  # one bad record must not keep the others out
            _log.warning("%s record of tenant %r not loaded: %s", kind, tenant, exc.detail)

    kinds = (GROUP, DEVICE)

    async def changed(self, change: RecordChange) -> None:
        """Another replica saved or deleted a group or a device: hold what the store holds,
        and let the MQTT side subscribe to what this replica must now listen to."""
        tenant, key = change.tenant, change.key
        registry = self._registry
        if change.kind == GROUP:
            old: Group | Device | None = registry.group(tenant, key)
        else:
            old = registry.device(tenant, key)
        if old is not None and old.raw == change.doc:
            return
        if isinstance(old, Group):
            registry.remove_group(tenant, old)
        elif old is not None:
            registry.remove_device(tenant, old)
        if change.doc is not None:
            self._load(tenant, change.kind, change.doc)
        self._changed()

    def held_keys(self, kind: str) -> set[tuple[str, str]]:
        held = self._registry.groups if kind == GROUP else self._registry.devices
        return {(tenant, key) for tenant, items in held.items() for key in items}

    async def create_groups(self, tenant: str, groups: list[Group]) -> None:
        """Provision ``groups``; ``AlreadyExists`` (and nothing created) on any conflict."""
        self._add_groups(tenant, groups)
        try:
            store = await self._store.tenant(tenant, create=True)
            await store.save_records(GROUP, [(group_key(group), group.raw) for group in groups])
        except BaseException:
            for group in reversed(groups):
                self._registry.remove_group(tenant, group)
            raise
        self._changed()

    def groups(self, tenant: str) -> list[Group]:
        """The tenant's groups in creation order."""
        return list(self._registry.groups.get(tenant, {}).values())

    async def update_group(self, tenant: str, resource: str, apikey: str, fragment: Any) -> Group:
        """Change the group ``(resource, apikey)`` with the members of ``fragment``."""
        old = self._group(tenant, resource, apikey)
        new = parse_group_update(old, fragment)
        self._registry.replace_group(tenant, old, new)
        moved = self._follow(tenant, new)
        try:
            store = await self._store.tenant(tenant)
            await store.save_record(GROUP, group_key(new), new.raw)
            if moved:
                await store.save_records(
                    DEVICE, [(after.device_id, after.raw) for _, after in moved]
                )
        except BaseException:
            self._registry.replace_group(tenant, new, old)
            for before, after in reversed(moved):
                self._registry.replace_device(tenant, after, before)
            raise
        self._changed()
        return new

    async def delete_group(self, tenant: str, resource: str, apikey: str) -> None:
        """Remove a group; the devices provisioned under it stay."""
        group = self._group(tenant, resource, apikey)
        store = await self._store.tenant(tenant)
        await store.delete_record(GROUP, group_key(group))
        self._registry.remove_group(tenant, group)
        self._changed()

    async def create_devices(self, tenant: str, devices: list[Device]) -> None:
        """Provision ``devices``; ``AlreadyExists`` (and nothing created) on any conflict."""
        self._add_devices(tenant, devices)
        try:
            store = await self._store.tenant(tenant, create=True)
            await store.save_records(DEVICE, [(device.device_id, device.raw) for device in devices])
        except BaseException:
            for device in reversed(devices):
                self._registry.remove_device(tenant, device)
            raise
        self._changed()

    def devices(self, tenant: str) -> list[Device]:
        """The tenant's devices in creation order."""
        return list(self._registry.devices.get(tenant, {}).values())

    def device(self, tenant: str, device_id: str) -> Device:
        """One device; ``ResourceNotFound`` if the tenant has none of that id."""
        found = self._registry.device(tenant, device_id)
        if found is None:
            raise ResourceNotFound(f"device {device_id!r} does not exist")
        return found

    async def update_device(self, tenant: str, device_id: str, fragment: Any) -> Device:
        """Change a device with the members of ``fragment``."""
        old = self.device(tenant, device_id)
        new = parse_device_update(old, fragment)
        self._registry.replace_device(tenant, old, new)
        try:
            store = await self._store.tenant(tenant)
            await store.save_record(DEVICE, device_id, new.raw)
        except BaseException:
            self._registry.replace_device(tenant, new, old)
            raise
        self._changed()
        return new

    async def delete_device(self, tenant: str, device_id: str) -> None:
        """Remove a device (its entity stays)."""
        device = self.device(tenant, device_id)
        store = await self._store.tenant(tenant)
        await store.delete_record(DEVICE, device_id)
        self._registry.remove_device(tenant, device)
        self._changed()

    async def drop_tenant(self, tenant: str) -> None:
        """Forget the groups and devices of a deleted tenant (its store is dropped after)."""
        for device in self.devices(tenant):
            self._registry.remove_device(tenant, device)
        for group in self.groups(tenant):
            self._registry.remove_group(tenant, group)
        self._changed()

    def for_iota(self, apikey: str, device_id: str) -> Effective | None:
        """The device an IoT Agent JSON message on ``…/<apikey>/<device_id>/…`` comes from.

        A provisioned device of the apikey's tenant (with that apikey or none; not a LoRaWAN
        one), else an autoprovisioned one if the apikey's group allows it, else ``None``.
        """
        tenant = self._registry.apikey_tenant(apikey)
        if tenant is None:
            return None
        group = self._registry.iota_group(tenant, apikey)
        device = self._registry.device(tenant, device_id)
        if device is not None:
            if device.apikey not in (None, apikey) or device.lorawan is not None:
                return None
            return effective(tenant, device, group, device_id)
        if group is None or not group.autoprovision or not is_device_id(device_id):
            return None
        return effective(tenant, None, group, device_id)

    def for_lorawan(
        self,
        application_id: str,
        device_id: str | None,
        dev_eui: str | None,
        *,
        server_url: str | None = None,
    ) -> tuple[Effective, Lorawan] | None:
        """The device a LoRaWAN uplink of ``application_id`` comes from, with its settings.

        Found by dev_eui, else by device id, among the application's provisioned devices; else
        autoprovisioned from the application's group (named ``device_id``, else the dev_eui) if
        it allows that. ``server_url`` (``ApplicationServer.url``) says which network server the
        uplink came from; without it an application id provisioned on two servers finds nothing,
        rather than a device of the wrong tenant.
        """
        app = self._registry.app(application_id, server_url)
        if app is None:
            return None
        eui = None if dev_eui is None else dev_eui.lower()
        device = None if eui is None else app.by_eui.get(eui)
        if device is None and device_id is not None:
            device = app.by_id.get(device_id)
        if device is not None:
            assert device.lorawan is not None  # only LoRaWAN devices are filed under an app
            if eui is not None and device.lorawan.dev_eui not in (None, eui):
                return None  # same device id, another radio: not this device
            return effective(app.tenant, device, app.group, device.device_id), device.lorawan
        group = app.group
        name = device_id or eui
        if group is None or group.lorawan is None or not group.autoprovision:
            return None
        if not is_device_id(name):
            return None
        found = with_dev_eui(effective(app.tenant, None, group, str(name)), eui)
        assert found.lorawan is not None
        return found, found.lorawan

    def application_servers(self) -> dict[Connection, tuple[ApplicationServer, frozenset[str]]]:
        """Each way to reach a network server's broker (URL, login, provider) → (how to
        connect, the application ids to subscribe to that way).

        Applications on one broker with different logins or providers are reached apart.
        """
        servers: dict[Connection, tuple[ApplicationServer, set[str]]] = {}
        for (_, application_id), app in self._registry.apps.items():
            server = app.server
            servers.setdefault(server.connection, (server, set()))[1].add(application_id)
        return {key: (server, frozenset(ids)) for key, (server, ids) in servers.items()}

    async def remember_autoprovisioned(self, found: Effective) -> None:
        """File an autoprovisioned device, so GET /iot/devices lists it and its id stays put."""
        if not found.autoprovisioned or self._registry.device(found.tenant, found.device_id):
            return
        devices = parse_devices({"devices": [autoprovisioned_doc(found)]})
        try:
            await self.create_devices(found.tenant, devices)
        except AlreadyExists as exc:  # provisioned meanwhile, or its dev_eui is taken
            _log.debug("autoprovisioned device %r not filed: %s", found.device_id, exc.detail)

    def _group(self, tenant: str, resource: str, apikey: str) -> Group:
        found = self._registry.group(tenant, f"{resource}|{apikey}")
        if found is None:
            raise ResourceNotFound(
                f"no group with resource {resource!r} and apikey {apikey!r} exists"
            )
        return found

    def _follow(self, tenant: str, group: Group) -> list[tuple[Device, Device]]:
        """Make the devices of ``group``'s application name its login and provider again."""
        app = None if group.lorawan is None else self._registry.apps.get(app_key(group.lorawan))
        if app is None or group.lorawan is None:
            return []
        wanted = group.lorawan.application_server.connection
        moved = [
            (device, following(device, group))
            for device in app.by_id.values()
            if device.lorawan is not None and device.lorawan.application_server.connection != wanted
        ]
        for before, after in moved:
            self._registry.replace_device(tenant, before, after)
        return moved

    def _add_groups(self, tenant: str, groups: list[Group]) -> None:
        added: list[Group] = []
        try:
            for group in groups:
                self._registry.check_group(tenant, group)
                self._registry.add_group(tenant, group)
                added.append(group)
        except AlreadyExists:
            for group in reversed(added):
                self._registry.remove_group(tenant, group)
            raise

    def _add_devices(self, tenant: str, devices: list[Device]) -> None:
        added: list[Device] = []
        try:
            for device in devices:
                self._registry.check_device(tenant, device)
                self._registry.add_device(tenant, device)
                added.append(device)
        except AlreadyExists:
            for device in reversed(added):
                self._registry.remove_device(tenant, device)
            raise

    def _changed(self) -> None:
        for listener in self.listeners:
            try:
                listener()
            except Exception:  # a listener's bug must not undo a committed change
                _log.exception("provisioning listener failed")
