"""Sign-up end to end in real processes: the API answers, the worker mails through a real SMTP
server, the link in the mail confirms the address, and then the login works."""

from __future__ import annotations

import asyncio

import httpx

from tripline_devstack import DevMailServer, free_port

PASSWORD = "violet tractor 42"


async def test_a_new_account_signs_up_follows_the_mailed_link_and_logs_in(
    processes, mail_server: DevMailServer
) -> None:
    api = processes.start("api", "tripline-api")
    worker = processes.start(
        "worker",
        "tripline-worker",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(mail_server.port),
        SMTP_STARTTLS="false",
        PUBLIC_BASE_URL=api.url,
    )
    processes.wait_ready(api)
    processes.wait_ready(worker)
    email = "kim@example.com"
    async with httpx.AsyncClient(timeout=10) as client:
        signed_up = await client.post(
            f"{api.url}/v1/users",
            json={"email": email, "display_name": "Kim", "password": PASSWORD},
        )
        assert signed_up.status_code == 202, signed_up.text
        login = {"username": email, "password": PASSWORD}
        early = await client.post(f"{api.url}/v1/auth/token", data=login)
        assert early.status_code == 403 and early.json()["code"] == "email_not_verified"

        [mail] = await asyncio.to_thread(mail_server.wait_for, email)
        [link] = mail.links
        assert link.startswith(f"{api.url}/v1/accounts/verify-email?token=")
        clicked = await client.get(link)  # What the newcomer's browser does.
        assert clicked.status_code == 200 and clicked.json() == {"status": "verified"}
        again = await client.get(link)
        assert again.status_code == 410 and again.json()["code"] == "token_used"

        token = await client.post(f"{api.url}/v1/auth/token", data=login)
        assert token.status_code == 200, token.text
        me = await client.get(
            f"{api.url}/v1/users/me",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        )
        assert me.json()["email"] == email


async def test_sign_up_answers_while_the_mail_server_is_down_and_the_mail_follows(
    processes,
) -> None:
    """The API's answer never waits for SMTP: with no mail server listening, sign-up is still
    a 202; the worker retries, and once the server is up the message arrives."""
    port = free_port()
    api = processes.start("api", "tripline-api")
    worker = processes.start(
        "worker",
        "tripline-worker",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        SMTP_STARTTLS="false",
        PUBLIC_BASE_URL=api.url,
    )
    processes.wait_ready(api)
    processes.wait_ready(worker)
    async with httpx.AsyncClient(timeout=10) as client:
        signed_up = await client.post(
            f"{api.url}/v1/users",
            json={"email": "lee@example.com", "display_name": "Lee", "password": PASSWORD},
        )
    assert signed_up.status_code == 202
    deadline = asyncio.get_running_loop().time() + 20
    while not any('"account_mail_failed"' in line for line in worker.log_lines()):
        assert asyncio.get_running_loop().time() < deadline, "\n".join(worker.log_lines()[-20:])
        await asyncio.sleep(0.1)
    mail_server = DevMailServer(port)
    mail_server.start()
    try:
        [mail] = await asyncio.to_thread(mail_server.wait_for, "lee@example.com", 1, 30)
    finally:
        mail_server.stop()
    assert mail.links
