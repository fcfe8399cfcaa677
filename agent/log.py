import logging

logger = logging.getLogger("kyutai.agent")
