import logging

logger = logging.getLogger("kyutai.dispatcher")
