// hqflow_board: the streaming top (hqflow_top) behind a UART bridge, the design of a board's bitstream.
// The host sends images and reads back logits over one serial line (8N1, CLKS_PER_BIT clocks a bit):
//
//   host -> board   an image: ELEMENTS elements in the top's input order, each IN_BYTES = ceil(IN_BITS / 8)
//                   bytes, least significant first (the element's T event counts, step t at bits
//                   [t*X, (t+1)*X))
//   board -> host   the CLASSES logits in class order, each OUT_BYTES = ceil(LOGIT_BITS / 8) bytes, least
//                   significant first, two's complement sign-extended to OUT_BYTES*8 bits; then 4 bytes:
//                   the cycles from the image's first element entering hqflow_top to its last logit
//                   leaving it (unsigned, least significant first): the latency, counted by the circuit
//
// The bridge holds a whole image in a FIFO before it lets the top see its first element, and the logits
// in a second FIFO while they are sent, so that the top runs at its own pace and the count is its
// latency, not the serial line's. One image at a time: the host sends the next one after the reply.
// led[7]: an image is in the top; led[6:0]: the class of the last image (the first largest logit).
// rst_n: active low (a button; pressed while the board runs it clears the bridge and the pipeline).
module hqflow_board #(
    parameter integer IN_BITS = 60,        // the top's in_tdata width (T values of X bits)
    parameter integer ELEMENTS = 1152,     // input elements an image
    parameter integer CLASSES = 10,
    parameter integer LOGIT_BITS = 35,     // the top's out_tdata width
    parameter integer CLKS_PER_BIT = 25    // clock / baud rate
) (
    input  wire       clk,
    input  wire       rst_n,
    input  wire       uart_rx,
    output wire       uart_tx,
    output wire [7:0] led
);
    localparam integer IN_BYTES = (IN_BITS + 7) / 8;
    localparam integer OUT_BYTES = (LOGIT_BITS + 7) / 8;
    localparam integer IB = $clog2(IN_BYTES + 1);
    localparam integer OB = $clog2(OUT_BYTES + 4 + 1);
    localparam integer EB = $clog2(ELEMENTS + 1);
    localparam integer KB = CLASSES > 1 ? $clog2(CLASSES) : 1;
    initial if (CLASSES > 128) $error("hqflow_board: CLASSES %0d exceeds the 7 class LEDs' 128", CLASSES);
    initial if (LOGIT_BITS > 64) $error("hqflow_board: LOGIT_BITS %0d exceeds 64", LOGIT_BITS);

    // ---- reset: held for 16 cycles after configuration and while rst_n is low ---------------------
    reg [1:0] rst_sync = 2'b00;
    reg [4:0] por = 5'd0;
    reg rst = 1'b1;
    always @(posedge clk) begin
        rst_sync <= {rst_sync[0], rst_n};
        if (!rst_sync[1]) por <= 0; else if (!por[4]) por <= por + 1'b1;
        rst <= !por[4];
    end

    // ---- host -> image FIFO: bytes into elements, an image released once it is whole --------------
    wire rx_valid;
    wire [7:0] rx_byte;
    hqflow_uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) rx (
        .clk(clk), .rst(rst), .rx(uart_rx), .m_tvalid(rx_valid), .m_tdata(rx_byte));
    reg [IN_BYTES*8-1:0] element;
    reg [IB-1:0] byte_n;
    reg [EB-1:0] written;                  // elements of the image being received
    reg put;
    always @(posedge clk) begin
        put <= 1'b0;
        if (rst) begin
            byte_n <= 0; written <= 0;
        end else if (rx_valid) begin
            element <= {rx_byte, element[IN_BYTES*8-1:8]};
            if (byte_n == IN_BYTES - 1) begin
                byte_n <= 0; put <= 1'b1;
                written <= written == ELEMENTS - 1 ? 0 : written + 1'b1;
            end else byte_n <= byte_n + 1'b1;
        end
    end
    wire whole = put && written == 0;      // the element just put completes an image
    wire img_tvalid, img_tlast, top_in_tready;
    wire [IN_BITS-1:0] img_tdata;
    reg [1:0] images;                      // whole images in the FIFO, not yet taken to their end
    wire in_tvalid = img_tvalid && images != 0;
    wire take = in_tvalid && top_in_tready;
    hqflow_fifo #(.WIDTH(IN_BITS), .DEPTH(ELEMENTS), .FRAME(ELEMENTS)) image_fifo (
        .clk(clk), .rst(rst), .s_tvalid(put), .s_tready(), .s_tdata(element[IN_BITS-1:0]), .s_tlast(1'b0),
        .m_tvalid(img_tvalid), .m_tready(top_in_tready && images != 0), .m_tdata(img_tdata), .m_tlast(img_tlast));
    always @(posedge clk)
        if (rst) images <= 0;
        else images <= images + whole - (take && img_tlast);

    // ---- the model -------------------------------------------------------------------------------
    wire out_tvalid, out_tready, out_tlast;
    wire [LOGIT_BITS-1:0] out_tdata;
    hqflow_top model (
        .clk(clk), .rst(rst),
        .in_tvalid(in_tvalid), .in_tready(top_in_tready), .in_tdata(img_tdata), .in_tlast(img_tlast),
        .out_tvalid(out_tvalid), .out_tready(out_tready), .out_tdata(out_tdata), .out_tlast(out_tlast));

    // ---- latency count and the predicted class ---------------------------------------------------
    wire leave = out_tvalid && out_tready;
    reg counting;
    reg [31:0] cycles;
    reg [KB-1:0] class_n, best_n, shown;
    reg signed [LOGIT_BITS-1:0] best;
    always @(posedge clk) begin
        if (rst) begin
            counting <= 1'b0; class_n <= 0; shown <= 0;
        end else begin
            if (take && !counting) begin counting <= 1'b1; cycles <= 1; end
            else if (counting) cycles <= cycles + 1'b1;
            if (leave) begin
                if (class_n == 0 || $signed(out_tdata) > best) begin best <= out_tdata; best_n <= class_n; end
                class_n <= out_tlast ? 0 : class_n + 1'b1;
                if (out_tlast) begin
                    counting <= 1'b0;
                    shown <= (class_n == 0 || $signed(out_tdata) > best) ? class_n : best_n;
                end
            end
        end
    end
    wire [6:0] class_led = shown;
    assign led = {counting, class_led};

    // ---- logits FIFO -> bytes -> host --------------------------------------------------------------
    wire lg_tvalid, lg_tlast;
    reg lg_tready;
    wire [LOGIT_BITS-1:0] lg_tdata;
    hqflow_fifo #(.WIDTH(LOGIT_BITS), .DEPTH(CLASSES), .FRAME(CLASSES)) logit_fifo (
        .clk(clk), .rst(rst), .s_tvalid(out_tvalid), .s_tready(out_tready), .s_tdata(out_tdata), .s_tlast(out_tlast),
        .m_tvalid(lg_tvalid), .m_tready(lg_tready), .m_tdata(lg_tdata), .m_tlast(lg_tlast));
    reg [(OUT_BYTES + 4)*8-1:0] word;      // the bytes still to send, the next in the low byte
    reg [OB-1:0] word_n;                   // how many
    wire tx_ready;
    wire [OUT_BYTES*8-1:0] extended = {{(OUT_BYTES*8 - LOGIT_BITS + 1){lg_tdata[LOGIT_BITS-1]}}, lg_tdata[LOGIT_BITS-2:0]};
    reg count_wait;                        // the last logit is in word: its count follows once it is final
    always @(posedge clk) begin
        lg_tready <= 1'b0;
        if (rst) begin
            word_n <= 0; count_wait <= 1'b0;
        end else if (word_n == 0) begin
            if (lg_tvalid && !lg_tready) begin
                lg_tready <= 1'b1;         // pop it next cycle (lg_tdata holds until then)
                word[OUT_BYTES*8-1:0] <= extended;
                word_n <= OUT_BYTES;
                count_wait <= lg_tlast;
            end
        end else if (tx_ready) begin
            word <= word >> 8;
            word_n <= word_n - 1'b1;
            if (word_n == 1 && count_wait) begin
                word[31:0] <= cycles; word_n <= 4; count_wait <= 1'b0;
            end
        end
    end
    hqflow_uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) tx (
        .clk(clk), .rst(rst), .s_tvalid(word_n != 0), .s_tready(tx_ready), .s_tdata(word[7:0]), .tx(uart_tx));
endmodule
