"""A local stand-in for Discord that speaks its wire protocol to the real discord.py client.

REST (``/api/v10``) and the gateway (a WebSocket) on 127.0.0.1, answering as Discord does:
status codes, JSON error codes (10062 Unknown interaction, 10015 Unknown Webhook, 50013
Missing Permissions, 30007 Maximum webhooks, 40060 already acknowledged), ``X-RateLimit-*``
headers and 429s over the per-channel limit (5 posts per 5 s), ``nonce`` with
``enforce_nonce``, the gateway's HELLO → IDENTIFY → READY → GUILD_CREATE, heartbeats and
their ACKs, and zlib-stream transport compression. Tests drive it with raw gateway events
(:meth:`LocalDiscord.click`, :meth:`submit_form`, :meth:`command`, :meth:`dm`) and read what a
user would see from its state (:meth:`story`, :meth:`replies`).

Only what the bot uses is implemented; anything else answers 404 like an unknown route, so a
new call to Discord shows up as a failing test rather than passing silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl
from aiohttp import WSMsgType, web

APP_ID = 900_000_000_000_000_001
BOT_ID = APP_ID
GUILD_ID = 500_000_000_000_000_001
OWNER_ID = 600_000_000_000_000_001
ALL_PERMISSIONS = (1 << 50) - 1
MANAGE_WEBHOOKS = 1 << 29
RATE = 5  # posts per channel ...
PER = 5.0  # ... per this many seconds (Discord's per-channel limit for bots)
_ids = itertools.count(700_000_000_000_000_001)


def snowflake() -> str:
    return str(next(_ids))


def now_iso() -> str:
    return discord.utils.utcnow().isoformat()


def user_payload(uid: int, name: str, *, bot: bool = False) -> dict[str, Any]:
    return {"id": str(uid), "username": name.lower(), "global_name": name, "discriminator": "0",
            "avatar": None, "bot": bot, "public_flags": 0}  # fmt: skip


@dataclass
class Posted:
    """A message as Discord holds it, with who sent it and every edit."""

    data: dict[str, Any]
    via: str  # bot | webhook | response | followup
    ephemeral: bool = False
    interaction: str | None = None  # the interaction it answers
    deleted: bool = False
    edits: int = 0

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def channel(self) -> int:
        return int(self.data["channel_id"])

    @property
    def username(self) -> str:
        return str(self.data["author"].get("global_name") or self.data["author"]["username"])

    @property
    def text(self) -> str:
        parts = [self.data.get("content") or ""]
        parts += [e.get("description") or "" for e in self.data.get("embeds") or []]
        return "\n\n".join(p for p in parts if p)

    def buttons(self) -> list[dict[str, Any]]:
        found = []
        for row in self.data.get("components") or []:
            for component in row.get("components", []):
                if component.get("type") == 2:
                    found.append(component)
        return found

    def custom_ids(self, *, enabled: bool = True) -> list[str]:
        return [b["custom_id"] for b in self.buttons() if not (enabled and b.get("disabled"))]


@dataclass
class Interaction:
    id: str
    token: str
    user: int
    channel: int
    kind: str  # command | click | form
    created: float
    response: int | None = None  # the callback type given
    modal: dict[str, Any] | None = None
    expired: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class LocalDiscord:
    """One guild (with its owner and the bot), any number of users, channels and DMs."""

    def __init__(self) -> None:
        self.users: dict[int, dict[str, Any]] = {BOT_ID: user_payload(BOT_ID, "Kepler", bot=True)}
        self.users[OWNER_ID] = user_payload(OWNER_ID, "Owner")
        self.channels: dict[int, dict[str, Any]] = {}
        self.messages: list[Posted] = []
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.interactions: dict[str, Interaction] = {}
        self.forbidden_webhooks: set[int] = set()  # channels whose webhook calls answer 403
        self.expire_next = False  # the next interaction's token is dead before the bot answers
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.invalid = 0  # 401/403/429 answered (Discord's invalid-request count)
        self.sockets: list[web.WebSocketResponse] = []
        self.identified = asyncio.Event()
        self.heartbeats = 0
        self._seq = 0
        self.rate = RATE  # posts per channel per PER seconds before a 429
        self._posts: dict[int, deque[float]] = defaultdict(deque)
        self._nonces: dict[tuple[int, str], Posted] = {}
        self._zlib: dict[int, Any] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.guild_roles = [{"id": str(GUILD_ID), "name": "@everyone", "permissions": "0",
                             "position": 0, "color": 0, "hoist": False, "managed": False,
                             "mentionable": False, "flags": 0}]  # fmt: skip
        self.bot_role = {"id": snowflake(), "name": "Kepler", "permissions": str(ALL_PERMISSIONS),
                         "position": 1, "color": 0, "hoist": False, "managed": True,
                         "mentionable": False, "flags": 0}  # fmt: skip
        self.guild_roles.append(self.bot_role)

    # --- the world ----------------------------------------------------------------------

    def user(self, uid: int, name: str) -> int:
        self.users[uid] = user_payload(uid, name)
        return uid

    def text_channel(self, cid: int, name: str = "mission", *, manage_webhooks: bool = True) -> int:
        overwrites = []
        if not manage_webhooks:  # the server took Manage Webhooks from the bot here
            overwrites.append({"id": str(BOT_ID), "type": 1, "allow": "0",
                               "deny": str(MANAGE_WEBHOOKS)})  # fmt: skip
        self.channels[cid] = {"id": str(cid), "type": 0, "guild_id": str(GUILD_ID), "name": name,
                              "position": len(self.channels), "permission_overwrites": overwrites,
                              "nsfw": False, "parent_id": None, "topic": None,
                              "rate_limit_per_user": 0, "last_message_id": None, "flags": 0}  # fmt: skip
        return cid

    def dm_channel(self, uid: int) -> int:
        for cid, ch in self.channels.items():
            if ch["type"] == 1 and ch["recipients"][0]["id"] == str(uid):
                return cid
        cid = int(snowflake())
        self.channels[cid] = {"id": str(cid), "type": 1, "recipients": [self.users[uid]],
                              "last_message_id": None, "flags": 0}  # fmt: skip
        return cid

    def guild_payload(self) -> dict[str, Any]:
        members = [{"user": self.users[BOT_ID], "roles": [self.bot_role["id"]],
                    "joined_at": now_iso(), "deaf": False, "mute": False, "flags": 0}]  # fmt: skip
        return {
            "id": str(GUILD_ID), "name": "Study group", "owner_id": str(OWNER_ID), "icon": None,
            "roles": self.guild_roles, "emojis": [], "stickers": [], "features": [],
            "channels": [c for c in self.channels.values() if c["type"] in (0, 11, 15)
                         and c.get("guild_id")],
            "threads": [], "members": members, "member_count": len(self.users),
            "large": False, "unavailable": False, "joined_at": now_iso(), "voice_states": [],
            "presences": [], "stage_instances": [], "guild_scheduled_events": [],
            "premium_tier": 0, "preferred_locale": "en-US", "verification_level": 0,
            "default_message_notifications": 0, "explicit_content_filter": 0, "mfa_level": 0,
            "nsfw_level": 0, "system_channel_flags": 0, "afk_timeout": 300,
        }  # fmt: skip

    # --- what users see -----------------------------------------------------------------

    def story(self, cid: int) -> list[Posted]:
        """Messages everyone in the channel sees (not ephemeral, not deleted)."""
        return [m for m in self.messages
                if m.channel == cid and not m.ephemeral and not m.deleted]  # fmt: skip

    def replies(self, interaction_id: str) -> list[Posted]:
        """What the bot answered to one interaction (responses and follow-ups, not deleted)."""
        return [m for m in self.messages if m.interaction == interaction_id and not m.deleted]

    def buttons(self, cid: int, prefix: str = "kepler:") -> list[str]:
        """Enabled buttons in the channel, newest message last."""
        return [c for m in self.story(cid) for c in m.custom_ids() if c.startswith(prefix)]

    # --- raw gateway events -------------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self._seq += 1
        for ws in list(self.sockets):
            await self._send(ws, {"op": 0, "t": event, "s": self._seq, "d": data})

    def _base_interaction(self, uid: int, cid: int, kind: int) -> tuple[Interaction, dict[str, Any]]:
        iid, token = snowflake(), f"itoken-{snowflake()}"
        names = {2: "command", 3: "click", 5: "form"}
        record = Interaction(iid, token, uid, cid, names[kind], time.monotonic())
        record.expired, self.expire_next = self.expire_next, False
        self.interactions[iid] = record
        channel = self.channels[cid]
        payload: dict[str, Any] = {
            "id": iid, "application_id": str(APP_ID), "type": kind, "token": token,
            "version": 1, "channel_id": str(cid), "channel": channel, "locale": "en-US",
            "app_permissions": str(ALL_PERMISSIONS), "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)} if channel.get("guild_id")
            else {"1": str(uid)}, "context": 0 if channel.get("guild_id") else 1,
            "attachment_size_limit": 10 * 1024 * 1024,
        }  # fmt: skip
        if channel.get("guild_id"):
            payload["guild_id"] = channel["guild_id"]
            payload["guild"] = {"id": channel["guild_id"], "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = {"user": self.users[uid], "roles": [], "joined_at": now_iso(),
                                 "permissions": str(0x0000_0000_0004_0000 | (1 << 11)),
                                 "deaf": False, "mute": False, "flags": 0}  # fmt: skip
        else:
            payload["user"] = self.users[uid]
        return record, payload

    async def interact(self, payload: dict[str, Any], record: Interaction) -> Interaction:
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    async def command(
        self, uid: int, cid: int, name: str, sub: str | None = None, **options: Any
    ) -> Interaction:
        record, payload = self._base_interaction(uid, cid, 2)
        opts = [{"name": k, "type": 3 if isinstance(v, str) else 4, "value": v}
                for k, v in options.items()]  # fmt: skip
        data: dict[str, Any] = {"id": snowflake(), "name": name, "type": 1}
        data["options"] = [{"name": sub, "type": 1, "options": opts}] if sub else opts
        payload["data"] = data
        return await self.interact(payload, record)

    async def click(self, uid: int, custom_id: str, message: Posted | None = None) -> Interaction:
        """A click on a button: on ``message`` if given, else the newest message that has it."""
        if message is None:
            message = next(m for m in reversed(self.messages) if custom_id in m.custom_ids(
                enabled=False))  # fmt: skip
        record, payload = self._base_interaction(uid, message.channel, 3)
        payload["message"] = message.data
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        return await self.interact(payload, record)

    async def submit_form(self, uid: int, opened: Interaction, text: str) -> Interaction:
        """Submit the form the bot opened in answer to ``opened`` (a click)."""
        assert opened.modal is not None, "no form was opened"
        record, payload = self._base_interaction(uid, opened.channel, 5)
        inputs = [c for row in opened.modal["components"] for c in row["components"]]
        payload["data"] = {"custom_id": opened.modal["custom_id"], "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": i["custom_id"], "value": text}]}
            for i in inputs]}  # fmt: skip
        return await self.interact(payload, record)

    async def dm(self, uid: int, text: str) -> None:
        cid = self.dm_channel(uid)
        data = self._message(cid, self.users[uid], {"content": text})
        await self.dispatch("MESSAGE_CREATE", data)

    async def answered(self, record: Interaction, timeout: float = 30.0) -> Interaction:
        """Wait until the bot has responded to the interaction (any callback)."""
        await asyncio.wait_for(record.done.wait(), timeout)
        return record

    # --- the HTTP side ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._account])
        r = app.router
        api = "/api/v10"
        r.add_get("/gateway", self._gateway)
        r.add_get(api + "/gateway/bot", self._gateway_bot)
        r.add_get(api + "/users/@me", self._me)
        r.add_get(api + "/oauth2/applications/@me", self._application)
        r.add_get(api + "/applications/@me", self._application)
        r.add_get(api + "/users/{uid}", self._get_user)
        r.add_post(api + "/users/@me/channels", self._create_dm)
        r.add_get(api + "/channels/{cid}", self._get_channel)
        r.add_post(api + "/channels/{cid}/messages", self._post_message)
        r.add_patch(api + "/channels/{cid}/messages/{mid}", self._edit_message)
        r.add_post(api + "/channels/{cid}/typing", _no_content)
        r.add_get(api + "/channels/{cid}/webhooks", self._list_webhooks)
        r.add_post(api + "/channels/{cid}/webhooks", self._create_webhook)
        r.add_post(api + "/channels/{cid}/threads", self._create_thread)
        r.add_put(api + "/channels/{cid}/thread-members/{uid}", _no_content)
        r.add_post(api + "/interactions/{iid}/{token}/callback", self._callback)
        r.add_post(api + "/webhooks/{wid}/{token}", self._execute)
        r.add_patch(api + "/webhooks/{wid}/{token}/messages/{mid}", self._webhook_edit)
        r.add_delete(api + "/webhooks/{wid}/{token}/messages/{mid}", self._webhook_delete)
        r.add_get(api + "/guilds/{gid}/members/{uid}", self._get_member)
        return app

    @web.middleware
    async def _account(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        status = response.status
        self.requests.append((request.method, request.path, status))
        if status in (401, 403, 429):
            self.invalid += 1
        if request.path.startswith("/api/"):
            response.headers["Via"] = "1.1 google"  # as Discord's edge answers
            if "X-RateLimit-Limit" not in response.headers:
                response.headers.update(_bucket_headers(request.path, 50, 49, 1.0))
        return response

    async def start(self) -> LocalDiscord:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        for ws in list(self.sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # --- gateway ------------------------------------------------------------------------

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        return _json({"url": self.gateway, "shards": 1, "session_start_limit": {
            "total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}})  # fmt: skip

    async def _send(self, ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        raw = json.dumps(payload).encode()
        compressor = self._zlib.get(id(ws))
        if compressor is not None:
            await ws.send_bytes(compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH))
        else:
            await ws.send_str(raw.decode())

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if request.query.get("compress") == "zlib-stream":
            self._zlib[id(ws)] = zlib.compressobj()
        elif request.query.get("compress"):
            await ws.close(code=4000, message=b"unsupported compression")
            return ws
        await self._send(ws, {"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                    break
                payload = json.loads(msg.data)
                op = payload.get("op")
                if op == 1:
                    self.heartbeats += 1
                    await self._send(ws, {"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self._ready(ws, payload["d"])
                elif op == 6:  # RESUME: we keep no sessions: invalid, start over
                    await self._send(ws, {"op": 9, "d": False, "s": None, "t": None})
        finally:
            if ws in self.sockets:
                self.sockets.remove(ws)
            self._zlib.pop(id(ws), None)
        return ws

    async def _ready(self, ws: web.WebSocketResponse, identify: dict[str, Any]) -> None:
        if identify.get("token") != "local-token":
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        self._seq += 1
        ready = {"v": 10, "user": self.users[BOT_ID], "guilds": [{"id": str(GUILD_ID),
                 "unavailable": True}], "session_id": "local-session", "private_channels": [],
                 "resume_gateway_url": self.gateway, "application": {"id": str(APP_ID),
                 "flags": 0}, "shard": [0, 1]}  # fmt: skip
        await self._send(ws, {"op": 0, "t": "READY", "s": self._seq, "d": ready})
        self._seq += 1
        await self._send(ws, {"op": 0, "t": "GUILD_CREATE", "s": self._seq,
                              "d": self.guild_payload()})  # fmt: skip
        self.sockets.append(ws)
        self.identified.set()

    # --- REST: users, channels, messages ------------------------------------------------

    async def _me(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bot local-token":
            return _error(401, 0, "401: Unauthorized")
        return _json(self.users[BOT_ID])

    async def _application(self, request: web.Request) -> web.Response:
        return _json({"id": str(APP_ID), "name": "Kepler", "icon": None,
                                  "description": "", "bot_public": False,
                                  "bot_require_code_grant": False, "verify_key": "0" * 64,
                                  "owner": self.users[OWNER_ID], "flags": 0, "summary": "",
                                  "rpc_origins": [], "team": None})  # fmt: skip

    async def _get_user(self, request: web.Request) -> web.Response:
        uid = int(request.match_info["uid"])
        if uid not in self.users:
            return _error(404, 10013, "Unknown User")
        return _json(self.users[uid])

    async def _get_member(self, request: web.Request) -> web.Response:
        uid = int(request.match_info["uid"])
        if uid not in self.users:
            return _error(404, 10007, "Unknown Member")
        return _json({"user": self.users[uid], "roles": [], "joined_at": now_iso(),
                                  "deaf": False, "mute": False, "flags": 0})  # fmt: skip

    async def _create_dm(self, request: web.Request) -> web.Response:
        body = await request.json()
        return _json(self.channels[self.dm_channel(int(body["recipient_id"]))])

    async def _get_channel(self, request: web.Request) -> web.Response:
        cid = int(request.match_info["cid"])
        if cid not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        return _json(self.channels[cid])

    def _message(
        self, cid: int, author: dict[str, Any], body: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        channel = self.channels[cid]
        data = {
            "id": snowflake(), "channel_id": str(cid), "author": author,
            "content": body.get("content") or "", "timestamp": now_iso(),
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "attachments": body.get("attachments") or [],
            "embeds": body.get("embeds") or [], "pinned": False, "type": 0,
            "components": body.get("components") or [], "flags": body.get("flags") or 0,
        }  # fmt: skip
        if channel.get("guild_id"):
            data["guild_id"] = channel["guild_id"]
        if body.get("nonce") is not None:
            data["nonce"] = body["nonce"]
        data.update(extra)
        return data

    def _check_limits(self, body: dict[str, Any]) -> web.Response | None:
        """Discord's 400 Invalid Form Body for content and embeds over the limits."""
        embeds = body.get("embeds") or []
        total = sum(len(e.get("description") or "") + len(e.get("title") or "")
                    + len((e.get("author") or {}).get("name") or "") for e in embeds)  # fmt: skip
        if len(body.get("content") or "") > 2000:
            return _error(400, 50035, "Invalid Form Body: content longer than 2000")
        if len(embeds) > 10 or total > 6000:
            return _error(400, 50035, "Invalid Form Body: embeds over 10 or 6000 characters")
        if any(len(e.get("description") or "") > 4096 for e in embeds):
            return _error(400, 50035, "Invalid Form Body: embed description longer than 4096")
        mentions = body.get("allowed_mentions")
        if mentions is None or mentions.get("parse"):
            return _error(400, 0, "test stand-in: every message must turn mentions off")
        return None

    def _rate_limited(self, cid: int) -> web.Response | None:
        posts = self._posts[cid]
        now = time.monotonic()
        while posts and posts[0] <= now - PER:
            posts.popleft()
        if len(posts) >= self.rate:
            retry = posts[0] + PER - now
            response = _json({"message": "You are being rate limited.",
                                          "retry_after": round(retry, 3), "global": False,
                                          "code": 20028}, status=429)  # fmt: skip
            response.headers.update(_bucket_headers(f"channel-{cid}", self.rate, 0, retry))
            response.headers["Retry-After"] = str(max(1, int(retry + 0.999)))
            response.headers["X-RateLimit-Scope"] = "user"
            return response
        posts.append(now)
        return None

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body = json.loads(str(form["payload_json"]))
            names = [v.filename for k, v in form.items() if k.startswith("files[")]  # type: ignore[union-attr]
            body["attachments"] = [{"id": snowflake(), "filename": n, "size": 1, "url":
                                    f"http://127.0.0.1/{n}", "proxy_url": f"http://127.0.0.1/{n}"}
                                   for n in names]  # fmt: skip
            return body
        return await request.json() if request.can_read_body else {}

    async def _post_message(self, request: web.Request) -> web.Response:
        cid = int(request.match_info["cid"])
        if cid not in self.channels:
            return _error(404, 10003, "Unknown Channel")
        body = await self._body(request)
        if (bad := self._check_limits(body)) is not None:
            return bad
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce") and (cid, nonce) in self._nonces:
            return _json(self._nonces[(cid, nonce)].data)  # Discord: the same one
        if (limited := self._rate_limited(cid)) is not None:
            return limited
        posted = Posted(self._message(cid, self.users[BOT_ID], body), "bot")
        self.messages.append(posted)
        if nonce is not None:
            self._nonces[(cid, nonce)] = posted
        return self._counted(cid, _json(posted.data))

    def _counted(self, cid: int, response: web.Response) -> web.Response:
        """The channel bucket's headers after a post: what is left of 5 per 5 s."""
        posts = self._posts[cid]
        reset = posts[0] + PER - time.monotonic() if posts else PER
        response.headers.update(
            _bucket_headers(f"channel-{cid}", self.rate, self.rate - len(posts), reset)
        )
        return response

    def _find(self, mid: int) -> Posted | None:
        return next((m for m in self.messages if m.id == mid and not m.deleted), None)

    async def _edit_message(self, request: web.Request) -> web.Response:
        posted = self._find(int(request.match_info["mid"]))
        if posted is None:
            return _error(404, 10008, "Unknown Message")
        if posted.via != "bot":
            return _error(403, 50005, "Cannot edit a message authored by another user")
        return self._apply_edit(posted, await self._body(request))

    def _apply_edit(self, posted: Posted, body: dict[str, Any]) -> web.Response:
        merged = {**posted.data, **{k: v for k, v in body.items() if k in (
            "content", "embeds", "components", "attachments")}}  # fmt: skip
        if (bad := self._check_limits({**merged, "allowed_mentions":
                                       body.get("allowed_mentions") or {"parse": []}})) is not None:  # fmt: skip
            return bad
        posted.data = {**merged, "edited_timestamp": now_iso()}
        posted.edits += 1
        return _json(posted.data)

    # --- REST: webhooks -----------------------------------------------------------------

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        cid = int(request.match_info["cid"])
        if cid in self.forbidden_webhooks or not self._can_manage_webhooks(cid):
            return _error(403, 50013, "Missing Permissions")
        return _json([h for h in self.webhooks.values() if h["channel_id"] == str(cid)])

    async def _create_webhook(self, request: web.Request) -> web.Response:
        cid = int(request.match_info["cid"])
        if cid in self.forbidden_webhooks or not self._can_manage_webhooks(cid):
            return _error(403, 50013, "Missing Permissions")
        if sum(h["channel_id"] == str(cid) for h in self.webhooks.values()) >= 15:
            return _error(400, 30007, "Maximum number of webhooks reached (15)")
        body = await request.json()
        wid = int(snowflake())
        hook = {"id": str(wid), "type": 1, "channel_id": str(cid), "guild_id": str(GUILD_ID),
                "name": body["name"], "avatar": None, "token": f"whtoken-{wid}",
                "application_id": str(APP_ID), "user": self.users[BOT_ID]}  # fmt: skip
        self.webhooks[wid] = hook
        return _json(hook)

    def _can_manage_webhooks(self, cid: int) -> bool:
        for overwrite in self.channels[cid].get("permission_overwrites", []):
            if overwrite["id"] == str(BOT_ID) and int(overwrite["deny"]) & MANAGE_WEBHOOKS:
                return False
        return True

    def _interaction_by_token(self, token: str) -> Interaction | None:
        return next((i for i in self.interactions.values() if i.token == token), None)

    async def _execute(self, request: web.Request) -> web.Response:
        wid, token = int(request.match_info["wid"]), request.match_info["token"]
        body = await self._body(request)
        if wid == APP_ID:  # an interaction follow-up
            record = self._interaction_by_token(token)
            if record is None or record.expired or record.response is None:
                return _error(404, 10015, "Unknown Webhook")
            if (bad := self._check_limits(body)) is not None:
                return bad
            ephemeral = bool((body.get("flags") or 0) & 64)
            original = next((m for m in self.messages if m.interaction == record.id
                             and m.via == "response" and m.data.get("loading")), None)  # fmt: skip
            if original is not None:  # the first follow-up replaces "is thinking…"
                original.data = {**original.data, **self._message(record.channel,
                                 self.users[BOT_ID], body), "id": original.data["id"]}  # fmt: skip
                original.data.pop("loading", None)
                return _json(original.data)
            posted = Posted(self._message(record.channel, self.users[BOT_ID], body), "followup",
                            ephemeral=ephemeral, interaction=record.id)  # fmt: skip
            self.messages.append(posted)
            return _json(posted.data)
        hook = self.webhooks.get(wid)
        if hook is None or hook["token"] != token:
            return _error(404, 10015, "Unknown Webhook")
        if (bad := self._check_limits(body)) is not None:
            return bad
        components = body.get("components") or []
        if components and hook.get("application_id") != str(APP_ID):
            return _error(400, 50035, "Interactive components need an application-owned webhook")
        cid = int(request.query.get("thread_id") or hook["channel_id"])
        if (limited := self._rate_limited(cid)) is not None:
            return limited
        author = {**user_payload(wid, body.get("username") or hook["name"], bot=True),
                  "avatar": None}  # fmt: skip
        data = self._message(cid, author, body, webhook_id=str(wid))
        data["avatar_url_given"] = body.get("avatar_url")
        posted = Posted(data, "webhook")
        self.messages.append(posted)
        if request.query.get("wait") in ("true", "1", "True"):
            return self._counted(cid, _json(data))
        return self._counted(cid, web.Response(status=204))

    async def _webhook_edit(self, request: web.Request) -> web.Response:
        wid, token, mid = (request.match_info[k] for k in ("wid", "token", "mid"))
        body = await self._body(request)
        if int(wid) == APP_ID:
            record = self._interaction_by_token(token)
            if record is None or record.expired:
                return _error(404, 10015, "Unknown Webhook")
            posted = (next((m for m in self.messages if m.interaction == record.id
                            and m.via == "response"), None) if mid == "@original"
                      else self._find(int(mid)))  # fmt: skip
        else:
            hook = self.webhooks.get(int(wid))
            if hook is None or hook["token"] != token:
                return _error(404, 10015, "Unknown Webhook")
            posted = self._find(int(mid))
            if posted is not None and posted.data.get("webhook_id") != wid:
                return _error(403, 50005, "Cannot edit a message authored by another user")
        if posted is None:
            return _error(404, 10008, "Unknown Message")
        posted.data.pop("loading", None)
        return self._apply_edit(posted, body)

    async def _webhook_delete(self, request: web.Request) -> web.Response:
        token, mid = request.match_info["token"], request.match_info["mid"]
        record = self._interaction_by_token(token)
        if record is None or record.expired:
            return _error(404, 10015, "Unknown Webhook")
        posted = next((m for m in self.messages if m.interaction == record.id
                       and m.via == "response"), None) if mid == "@original" else None  # fmt: skip
        if posted is None:
            return _error(404, 10008, "Unknown Message")
        posted.deleted = True
        return web.Response(status=204)

    # --- REST: interactions -------------------------------------------------------------

    async def _callback(self, request: web.Request) -> web.Response:
        record = self.interactions.get(request.match_info["iid"])
        if record is None or record.token != request.match_info["token"] or record.expired:
            if record is not None:
                record.done.set()
            return _error(404, 10062, "Unknown interaction")
        if record.response is not None:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body = await self._body(request)
        kind, data = int(body["type"]), body.get("data") or {}
        if kind == 9 and record.kind == "form":
            return _error(400, 50035, "A form cannot open a form")
        if kind in (6, 7) and record.kind == "command":
            return _error(400, 50035, "Invalid interaction response type for a command")
        if kind in (4, 5, 7) and (bad := self._check_limits(
                {**data, "allowed_mentions": data.get("allowed_mentions") or {"parse": []}})):  # fmt: skip
            return bad
        record.response = kind
        message = None
        if kind in (4, 5):
            message = self._message(record.channel, self.users[BOT_ID], data)
            if kind == 5:
                message["loading"] = True
            posted = Posted(message, "response", ephemeral=bool((data.get("flags") or 0) & 64),
                            interaction=record.id)  # fmt: skip
            self.messages.append(posted)
        elif kind == 9:
            record.modal = data
        record.done.set()
        response: dict[str, Any] = {"interaction": {
            "id": record.id, "type": {"command": 2, "click": 3, "form": 5}[record.kind],
            "response_message_id": message["id"] if message else None,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool((data.get("flags") or 0) & 64)}}  # fmt: skip
        if message is not None:
            response["resource"] = {"type": kind, "message": message}
        else:
            response["resource"] = {"type": kind}
        return _json(response)

    async def _create_thread(self, request: web.Request) -> web.Response:
        parent = int(request.match_info["cid"])
        body = await request.json()
        tid = int(snowflake())
        thread = {"id": str(tid), "type": 11, "guild_id": str(GUILD_ID), "parent_id": str(parent),
                  "name": body["name"], "owner_id": str(BOT_ID), "member_count": 1,
                  "message_count": 0, "rate_limit_per_user": 0, "flags": 0,
                  "thread_metadata": {"archived": False, "auto_archive_duration": 10080,
                                      "archive_timestamp": now_iso(), "locked": False}}  # fmt: skip
        self.channels[tid] = thread
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread)


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON exactly as Discord labels it (discord.py compares the content type exactly)."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})  # fmt: skip


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"code": code, "message": message}, status=status)


def _bucket_headers(bucket: str, limit: int, remaining: int, reset_after: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": f"b-{abs(hash(bucket)) % 10**8}",
    }


@contextlib.contextmanager
def pointed_at(local: LocalDiscord) -> Iterator[None]:
    """Point discord.py at the stand-in for the duration.

    discord.py takes the REST base from the class attribute ``Route.BASE`` (for the client,
    and its own copy for webhooks and interaction responses) and a non-sharded client's
    gateway from ``DiscordWebSocket.DEFAULT_GATEWAY``; these are the library's documented
    connection settings, not client methods, so the client's own code runs unchanged.
    """
    from discord import gateway, http
    from discord.webhook import async_

    saved = (http.Route.BASE, async_.Route.BASE, gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    http.Route.BASE = local.api
    async_.Route.BASE = local.api
    gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(local.gateway + "/").with_path(
        "/gateway"
    )
    try:
        yield
    finally:
        http.Route.BASE, async_.Route.BASE, gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
