// hqflow_uart_rx / hqflow_uart_tx: 8N1 serial (one start bit 0, eight data bits LSB first, one stop
// bit 1), CLKS_PER_BIT clock cycles a bit (the clock over the baud rate: 25 at 25 MHz and 1 Mbaud).
// Byte streams on the fabric side (AXI-Stream without tlast): the receiver has no back pressure (a
// byte is lost if nothing takes it: the board bridge always does), the transmitter takes a byte when
// it is idle.

// Receiver: the line passes two flip-flops (it comes from another clock domain), a falling edge starts
// a byte, each bit is sampled in its middle; a byte whose stop bit reads 0 (a framing error) is dropped.
module hqflow_uart_rx #(parameter integer CLKS_PER_BIT = 25) (
    input  wire       clk,
    input  wire       rst,
    input  wire       rx,
    output reg        m_tvalid,   // one cycle, with m_tdata
    output reg  [7:0] m_tdata
);
    localparam integer CB = $clog2(CLKS_PER_BIT + 1);
    initial if (CLKS_PER_BIT < 2) $error("hqflow_uart_rx: CLKS_PER_BIT %0d must be at least 2", CLKS_PER_BIT);
    reg [1:0] sync = 2'b11;
    wire line = sync[1];
    reg busy;
    reg [CB-1:0] wait_n;          // cycles to the next sample
    reg [3:0] bit_n;              // 0: start bit, 1..8: data, 9: stop
    reg [7:0] shift;
    always @(posedge clk) begin
        sync <= {sync[0], rx};
        m_tvalid <= 1'b0;
        if (rst) begin
            busy <= 1'b0;
        end else if (!busy) begin
            if (!line) begin      // a start bit: its middle is half a bit away
                busy <= 1'b1; bit_n <= 0; wait_n <= CLKS_PER_BIT / 2;
            end
        end else if (wait_n != 0) begin
            wait_n <= wait_n - 1'b1;
        end else begin
            wait_n <= CLKS_PER_BIT - 1;
            bit_n <= bit_n + 1'b1;
            if (bit_n == 0) begin
                if (line) busy <= 1'b0;                    // a glitch, not a start bit
            end else if (bit_n <= 8) begin
                shift <= {line, shift[7:1]};
            end else begin
                busy <= 1'b0;
                if (line) begin m_tvalid <= 1'b1; m_tdata <= shift; end
            end
        end
    end
    initial begin busy = 0; m_tvalid = 0; end
endmodule

// Transmitter: takes a byte when idle (s_tready), shifts out start, data and stop bits.
module hqflow_uart_tx #(parameter integer CLKS_PER_BIT = 25) (
    input  wire       clk,
    input  wire       rst,
    input  wire       s_tvalid,
    output wire       s_tready,
    input  wire [7:0] s_tdata,
    output wire       tx
);
    localparam integer CB = $clog2(CLKS_PER_BIT + 1);
    reg [9:0] frame;              // {stop, data, start}, the bit on the line is frame[0]
    reg [3:0] left;               // bits still to send (0: idle)
    reg [CB-1:0] wait_n;
    assign s_tready = left == 0;
    assign tx = left == 0 ? 1'b1 : frame[0];
    always @(posedge clk) begin
        if (rst) begin
            left <= 0;
        end else if (left == 0) begin
            if (s_tvalid) begin frame <= {1'b1, s_tdata, 1'b0}; left <= 10; wait_n <= CLKS_PER_BIT - 1; end
        end else if (wait_n != 0) begin
            wait_n <= wait_n - 1'b1;
        end else begin
            wait_n <= CLKS_PER_BIT - 1;
            frame <= {1'b1, frame[9:1]};
            left <= left - 1'b1;
        end
    end
    initial left = 0;
endmodule
