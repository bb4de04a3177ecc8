"""A small simulated factory speaking the real protocols over real sockets.

Power and water meters over Modbus TCP (``meters``), CNC machines and a furnace over OPC UA
(``cnc``), a quality station over MQTT (``quality``). Deterministic with a seed, with an
accelerated clock. These are the simulated *devices*: unlike the gateway's connectors they may
use the protocol libraries' server sides.
"""
