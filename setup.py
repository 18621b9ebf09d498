from setuptools import find_packages, setup

setup(
    name="cronchat",
    version="0.1.0",
    description="A self-hostable realtime chat backend: REST and WebSocket API, CLI",
    python_requires=">=3.11",
    packages=find_packages(
        include=["cronchat", "cronchat.*", "cli", "cli.*", "storage", "storage.*", "migrations"]
    ),
    package_data={"migrations": ["mysql/*.sql", "sqlite/*.sql"]},
    include_package_data=True,
    install_requires=[
        "tornado>=6.4,<6.7",  # web/inbox.py reads frames with parts of WebSocketProtocol13
        "PyMySQL>=1.1",
        "DBUtils>=3.1",
        "PyJWT>=2.8",
        "Pillow>=10.1",
        "click>=8.1",
        "argon2-cffi>=23.1",
        "redis>=5.0",
        "boto3>=1.34",
        "prometheus-client>=0.20",
        "msgspec>=0.18",
        # egress.py: its network backend is where the guard connects to the address it checked
        "httpcore[asyncio]>=1.0.5",
        # httpcore asks sniffio which event loop it runs on, at every request; without it,
        # every request searches sys.path for it again (about 14% of the loop while pushing)
        "sniffio>=1.3",
        "cryptography>=42",  # VAPID keys (P-256, ES256) and the ECDH of Web Push
        "http-ece>=1.2",  # RFC 8291 / RFC 8188 aes128gcm encryption of Web Push payloads
    ],
    extras_require={
        "test": [
            "pytest>=8.0",
            "pytest-tornado>=0.8.1",
            "moto[server]>=5.0",
            "PyYAML>=6",
            "ruff>=0.5",
            "mypy>=1.10",
            "trustme>=1.1",
        ],
        "dev": [
            "ruff>=0.5",
            "mypy>=1.10",
            "pytest>=8.0",
            "pytest-tornado>=0.8.1",
            "moto[server]>=5.0",
            "PyYAML>=6",
            "trustme>=1.1",
        ],
    },
    entry_points={"console_scripts": ["cronchat=cli.main:main"]},
)
